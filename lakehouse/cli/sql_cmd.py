"""``lakehouse sql``: SQL without a server (DuckDB in this process)."""

from __future__ import annotations

import click

from lakehouse.cli.common import json_option, print_json, settings_options
from lakehouse.cli.funnel_cmd import parse_time
from lakehouse.settings import Settings


@click.command("sql")
@click.argument("query")
@click.option(
    "--snapshot",
    "snapshot_id",
    type=int,
    default=None,
    help="Read this snapshot of the events table (default: the current one).",
)
@click.option(
    "--start",
    default=None,
    help="Only events with client_ts >= this (ISO 8601); data files entirely before it "
    "are not read.",
)
@click.option(
    "--end",
    default=None,
    help="Only events with client_ts < this (ISO 8601); data files entirely after it are not read.",
)
@settings_options
@json_option
def sql(
    settings: Settings,
    json_output: bool,
    query: str,
    snapshot_id: int | None,
    start: str | None,
    end: str | None,
) -> None:
    """Run the SQL QUERY (DuckDB's dialect) over the events table, in this process.

    Views: `events` (the table), `events_ordered` (every event with event_seq,
    prev_event_type and millis_since_prev: the ordered view Trino and Athena have) and
    `rejected` (the records kept aside, with their reason). --json prints one JSON array
    of row objects. A bad query is a usage error (exit 2).

    Example: lakehouse sql "SELECT platform, count(*) AS n FROM events GROUP BY 1"
    """
    from lakehouse.engines.duckdb.query import rows_of
    from lakehouse.engines.duckdb.query import sql as run_sql

    frame = run_sql(
        query,
        settings,
        snapshot_id=snapshot_id,
        start=parse_time(start, "--start"),
        end=parse_time(end, "--end"),
    )
    if json_output:
        print_json(rows_of(frame))  # type: ignore[arg-type]
        return
    import polars as pl

    with pl.Config(tbl_rows=50, tbl_cols=-1, fmt_str_lengths=60, tbl_width_chars=200):
        click.echo(frame)
