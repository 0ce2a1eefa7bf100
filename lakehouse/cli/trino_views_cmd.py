"""``lakehouse trino views``: create or replace the lakehouse's views on a running Trino."""

from __future__ import annotations

import click

from lakehouse.cli.common import json_option, print_json, settings_options
from lakehouse.settings import Settings

PORT_HELP = "HTTP port of the server, on 127.0.0.1 [env LAKEHOUSE_TRINO_PORT; default 8080]."


@click.command("views")
@settings_options
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    envvar="LAKEHOUSE_TRINO_PORT",
    default=8080,
    help=PORT_HELP,
)
@json_option
def views(settings: Settings, port: int, json_output: bool) -> None:
    """Create or replace the views in the events table's schema (idempotent).

    \b
    events_ordered   every event with its position in its user's client-time sequence
                     (event_seq, ties broken by event_id), the previous event type
                     (prev_event_type) and the milliseconds since it (millis_since_prev);
                     the same rows as the read API's `ordered()` frame.

    The view lists the table's columns as they are now: run this again after the writers
    added a column (schema evolution) to bring it into the view. Exit codes: 0 ok,
    1 no server or a query failed, 2 configuration error.
    """
    from lakehouse.engines.trino.views import create_views

    results = create_views(settings, port=port)
    if json_output:
        print_json({"views": [r.to_dict() for r in results]})
        return
    for r in results:
        verb = "replaced" if r.existed else "created"
        added = f"; new columns: {', '.join(r.columns_added)}" if r.columns_added else ""
        click.echo(f"{verb} view {r.view} over {r.table} ({len(r.columns)} columns{added})")


__all__ = ["views"]
