"""``lakehouse athena``: run SQL on Athena, create the ordered view.

Settings: ``LAKEHOUSE_ATHENA_OUTPUT`` (required, ``s3://bucket/prefix/``),
``LAKEHOUSE_ATHENA_WORKGROUP`` (``primary``), ``LAKEHOUSE_ATHENA_DATABASE`` (the table's
namespace), ``LAKEHOUSE_ATHENA_CATALOG`` (``AwsDataCatalog``), ``LAKEHOUSE_ATHENA_TIMEOUT``
(``30m``); credentials and region from the standard AWS chain. Exit codes: 0 ok, 1 the
query failed or Athena could not be used, 2 usage or configuration error.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

import click

from lakehouse.cli.common import json_option, print_json, settings_options
from lakehouse.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])


def athena_options(func: F) -> F:
    """``--output``, ``--workgroup``, ``--database``: override the environment."""
    for decorator in reversed(
        [
            click.option(
                "--output",
                "output_location",
                default=None,
                help="S3 location for query results [env LAKEHOUSE_ATHENA_OUTPUT; required].",
            ),
            click.option(
                "--workgroup",
                default=None,
                help="Athena workgroup [env LAKEHOUSE_ATHENA_WORKGROUP; default primary].",
            ),
            click.option(
                "--database",
                default=None,
                help="Default database [env LAKEHOUSE_ATHENA_DATABASE; default: the table's namespace].",
            ),
        ]
    ):
        func = decorator(func)
    return func


def _client(settings: Settings, kw: dict[str, Any]) -> Any:
    from lakehouse.engines.athena import AthenaClient, AthenaConfig

    overrides = {k: kw.pop(k, None) for k in ("output_location", "workgroup", "database")}
    return AthenaClient(AthenaConfig.from_env(settings, **overrides))


@click.group()
def athena() -> None:
    """Query the lakehouse with Amazon Athena (tables in the Glue Data Catalog).

    \b
    lakehouse athena sql "SELECT event_type, count(*) FROM events GROUP BY 1"
    lakehouse athena views            # create or replace <table>_ordered
    lakehouse funnel --engine athena --steps view,click,purchase
    """


@athena.command()
@click.argument("query_text", metavar="QUERY")
@click.option(
    "--param",
    "params",
    multiple=True,
    help="A value for the next ? placeholder, passed as a string (repeatable).",
)
@athena_options
@settings_options
@json_option
def sql(
    query_text: str, params: tuple[str, ...], settings: Settings, json_output: bool, **kw: Any
) -> None:
    """Run QUERY on Athena and print the rows ('-' reads QUERY from stdin).

    \b
    Runs in the workgroup and default database of the settings (the events table's
    namespace, so `SELECT * FROM events` works); --param values fill ? placeholders as
    Athena execution parameters. Prints a table, or with --json an object
    {query_id, columns, types, rows (objects), row_count, statement_type, stats}.
    """
    client = _client(settings, kw)
    text = sys.stdin.read() if query_text == "-" else query_text
    began = time.monotonic()
    result = client.execute(text.strip().rstrip(";"), list(params) or None)
    elapsed = time.monotonic() - began
    if json_output:
        print_json(result.to_dict())
        return
    _print_table(result)
    plural = "" if result.row_count == 1 else "s"
    scanned = result.stats.data_scanned_bytes / 1e6
    click.echo(
        f"({result.row_count} row{plural}, {elapsed:.2f} s, {scanned:.1f} MB scanned, "
        f"query {result.query_id})",
        err=True,
    )


def _print_table(result: Any) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from lakehouse.engines.athena.results import plain

    if not result.columns:
        return
    table = Table(show_edge=False, header_style="bold")
    for name, type_name in zip(result.columns, result.types, strict=True):
        numeric = any(t in type_name for t in ("int", "double", "real", "float", "decimal"))
        table.add_column(escape(name), justify="right" if numeric else "left")
    for row in result.rows():
        table.add_row(*("[dim]NULL[/dim]" if v is None else escape(str(plain(v))) for v in row))
    Console(soft_wrap=False).print(table)


@athena.command()
@athena_options
@settings_options
@json_option
def views(settings: Settings, json_output: bool, **kw: Any) -> None:
    """Create or replace the view <table>_ordered (events_ordered) on Athena.

    Every column of the events table plus event_seq (position in the user's client-time
    sequence), prev_event_type and millis_since_prev. Columns of type timestamp with time
    zone appear as timestamp(6) in UTC (Athena views cannot hold the zoned type). Run it
    again after the table gains columns.
    """
    from lakehouse.engines.athena import create_ordered_view

    result = create_ordered_view(settings, client=_client(settings, kw))
    if json_output:
        print_json(result)
        return
    click.echo(
        f"created view {result.view} over {result.table} "
        f"({len(result.columns)} columns, query {result.query_id})"
    )
    if result.utc_columns:
        click.echo(f"  shown as UTC timestamps: {', '.join(result.utc_columns)}")


__all__ = ["athena"]
