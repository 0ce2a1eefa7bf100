"""The ``lakehouse`` command."""

from __future__ import annotations

import logging
import os

import click

from lakehouse.cli import commands
from lakehouse.cli.group import EXIT_CODES_HELP, LakehouseGroup

# Optional command groups contributed by other parts of the project.
_GROUPS = (
    ("lakehouse.cli.maintain_cmd", "maintain"),
    ("lakehouse.cli.funnel_cmd", "funnel"),
    ("lakehouse.cli.read_cmd", "snapshots"),
    ("lakehouse.cli.rejects_cmd", "rejects"),
    ("lakehouse.cli.trino_cmd", "trino"),
    ("lakehouse.cli.athena_cmd", "athena"),
    ("lakehouse.cli.check_cmd", "check"),
    ("lakehouse.cli.sql_cmd", "sql"),
)


@click.group(
    cls=LakehouseGroup,
    epilog=EXIT_CODES_HELP,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "-v",
    "--verbose",
    count=True,
    help="More logging on stderr (-v info, -vv debug); the traceback of an internal error.",
)
def cli(verbose: int) -> None:
    """An event lakehouse on Apache Iceberg.

    Events from client devices land in an Iceberg table partitioned by hour(client_ts),
    sorted by (client_ts, event_id), deduplicated by event_id, with late events committed
    as their own snapshots and bad records kept aside with a reason.

    Start with `lakehouse demo`, or `lakehouse init` then `lakehouse ingest PATH`.
    The embedded catalog (SQLite + a local warehouse under ./.lakehouse) needs no server;
    choose another with --catalog or LAKEHOUSE_CATALOG.
    """
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from lakehouse.redact import RedactingFilter

    for handler in logging.getLogger().handlers:  # no password in any library's log line
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
    os.environ.setdefault("POLARS_ICEBERG_PLANNER", "pyiceberg")


commands.register(cli)

for module_name, attr in _GROUPS:
    try:
        module = __import__(module_name, fromlist=[attr])
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        continue
    cli.add_command(getattr(module, attr))


def main() -> None:
    cli(prog_name="lakehouse")


if __name__ == "__main__":
    main()
