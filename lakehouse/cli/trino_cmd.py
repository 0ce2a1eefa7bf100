"""``lakehouse trino install|start|stop|status|sql``: a local Trino on the lakehouse catalog."""

from __future__ import annotations

import base64
import logging
import sys
import time
import uuid
from datetime import date, datetime, timedelta
from datetime import time as dtime
from decimal import Decimal
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from lakehouse.cli.common import (
    EXIT_PROBLEMS,
    Duration,
    json_option,
    print_json,
    settings_options,
)
from lakehouse.cli.trino_views_cmd import views
from lakehouse.settings import Settings
from lakehouse.trino_server.progress import ConsoleReporter

PORT_HELP = "HTTP port of the server, on 127.0.0.1 [env LAKEHOUSE_TRINO_PORT; default 8080]."
port_option = click.option(
    "--port",
    type=click.IntRange(1, 65535),
    envvar="LAKEHOUSE_TRINO_PORT",
    default=8080,
    help=PORT_HELP,
)


@click.group(name="trino")
def trino() -> None:
    """A local Trino 476 server that queries the lakehouse tables with SQL.

    \b
    lakehouse trino install            download Trino once into the cache
    lakehouse trino start              run it in the background on 127.0.0.1:8080
    lakehouse trino sql "SELECT ..."   query the tables (catalog `lakehouse`)
    lakehouse trino views              create or replace the events_ordered view
    lakehouse trino status | stop

    The server is cached in ~/.cache/lakehouse/trino/476 (env LAKEHOUSE_TRINO_HOME); each
    lakehouse home keeps its server's config, data and logs in $LAKEHOUSE_HOME/trino/<port>.
    Trino needs Java 24 or newer: see `lakehouse trino start --help`.
    """


@trino.command()
@click.option("--force", is_flag=True, help="Download and unpack again even if already installed.")
@json_option
def install(force: bool, json_output: bool) -> None:
    """Download Trino 476 into the cache (once; later calls return at once).

    \b
    Fetched with Maven (`mvn`) by coordinates, with strict checksums:
      io.trino:trino-server-core:476:tar.gz   the server
      io.trino:trino-iceberg:476:zip          the Iceberg connector -> plugin/iceberg
      org.xerial:sqlite-jdbc                  SQLite JDBC driver     -> plugin/iceberg
    About 550 MB is downloaded into Maven's local repository (~/.m2/repository, or env
    LAKEHOUSE_TRINO_MAVEN_REPO) and unpacked (~610 MB) into ~/.cache/lakehouse/trino/476
    (env LAKEHOUSE_TRINO_HOME). Each artifact's SHA-1 is checked against its .sha1 file.
    """
    from lakehouse.trino_server import install as do_install

    with ConsoleReporter(quiet=json_output) as reporter:
        result = do_install(force=force, reporter=reporter)
    if json_output:
        print_json(result)
        return
    where = result.installation.server_dir
    if result.already_installed:
        click.echo(f"Trino {result.installation.version} is already installed in {where}")
    else:
        click.echo(
            f"Installed Trino {result.installation.version} in {where} "
            f"({result.artifact_bytes / 1e6:.0f} MB of artifacts, "
            f"{result.installation.size_bytes / 1e6:.0f} MB unpacked, {result.seconds:.0f} s)"
        )


@trino.command()
@settings_options
@port_option
@click.option(
    "--with-catalog",
    "extra_catalogs",
    multiple=True,
    metavar="NAME",
    help="Also serve the pyiceberg catalog NAME as Trino catalog NAME (repeatable).",
)
@click.option(
    "--heap", default=None, help="JVM heap, like 6G [env LAKEHOUSE_TRINO_HEAP; default 6G]."
)
@click.option(
    "--timeout",
    type=Duration(),
    default=None,
    help="How long to wait for the server to be ready [env LAKEHOUSE_TRINO_STARTUP_TIMEOUT; default 3m].",
)
@click.option(
    "--no-install",
    is_flag=True,
    help="Fail instead of installing Trino when it is not in the cache.",
)
@json_option
def start(
    settings: Settings,
    port: int,
    extra_catalogs: tuple[str, ...],
    heap: str | None,
    timeout: timedelta | None,
    no_install: bool,
    json_output: bool,
) -> None:
    """Start Trino in the background and wait until it is ready.

    \b
    The server listens on 127.0.0.1 only. Its Iceberg catalog `lakehouse` reads the very
    catalog the Python writers use (the embedded SQLite catalog of --home, or the pyiceberg
    catalog named by --catalog / LAKEHOUSE_CATALOG); the default schema is the events
    table's namespace. Files go to $LAKEHOUSE_HOME/trino/<port>/:
      etc/       config.properties, jvm.config, catalog/lakehouse.properties (rewritten each start)
      log/       server.log (Trino), launcher.log (JVM output), http-request.log
      trino.pid  the server's process id; `stop` uses it
    Installs Trino first when it is not cached (unless --no-install).

    \b
    Java: Trino 476 needs Java 24+. Looked for in LAKEHOUSE_TRINO_JAVA_HOME, JAVA_HOME,
    /usr/lib/jvm/* (24 preferred, then the newest), then `java` on PATH.
    Sized for a small machine: -Xmx6G, query.max-memory-per-node=2GB. The snapshot-expiry
    procedure accepts any retention (floor 0s; env LAKEHOUSE_TRINO_MIN_RETENTION raises
    it, e.g. 7d); the orphan-file procedure 1d or more (LAKEHOUSE_TRINO_ORPHAN_MIN_RETENTION,
    as --force for `maintain run`: in-flight writes look like orphans). Already running:
    says so, exit 0.
    """
    from lakehouse.trino_server import ServerOptions, find_installation
    from lakehouse.trino_server import install as do_install
    from lakehouse.trino_server import start as do_start

    options = ServerOptions.from_env(
        port=port, heap=heap, startup_timeout=timeout, extra_catalogs=extra_catalogs or None
    )
    with ConsoleReporter(quiet=json_output) as reporter:
        if find_installation() is None and not no_install:
            reporter.stage("Trino is not installed yet; installing it first")
            do_install(reporter=reporter)
        result = do_start(settings, options, reporter=reporter)
    if json_output:
        print_json(result)
        return
    st = result.status
    if result.already_running:
        click.echo(f"Trino is already running on {st.url} (pid {st.pid}); nothing to do")
    else:
        click.echo(
            f"Trino {st.version} is running on {st.url} (pid {st.pid}, ready in {result.startup_seconds:.1f} s)"
        )
    click.echo(f"  catalogs: {', '.join(st.catalogs)}   schema: {settings.table.namespace}")
    click.echo(f"  log:      {st.server_log}")
    click.echo(
        f'  try:      lakehouse trino sql --port {st.port} "SELECT count(*) FROM {settings.table.name}"'
    )


@trino.command()
@settings_options
@port_option
@json_option
def stop(settings: Settings, port: int, json_output: bool) -> None:
    """Stop the server this lakehouse home started on --port.

    Only a process recorded in $LAKEHOUSE_HOME/trino/<port>/trino.pid whose command line
    names that instance's config is signalled (SIGTERM, then SIGKILL after 30 s); a
    Trino started some other way is left alone. Not running: says so, exit 0.
    """
    from lakehouse.trino_server import stop as do_stop

    result = do_stop(settings, port=port)
    if json_output:
        print_json(result)
    elif result.was_running:
        how = "killed" if result.forced else "stopped"
        click.echo(f"Trino (pid {result.pid}) on port {port} {how} in {result.seconds:.1f} s")
    else:
        click.echo(f"Trino is not running on port {port} for this lakehouse home; nothing to stop")


@trino.command()
@settings_options
@port_option
@json_option
def status(settings: Settings, port: int, json_output: bool) -> None:
    """Is this home's server on --port running? Version, pid, uptime, log path.

    Exit code 0 when it is running, 1 when it is not (the report is printed either way).
    """
    from lakehouse.trino_server import status as do_status

    st = do_status(settings, port=port)
    if json_output:
        print_json(st)
    elif st.running:
        state = "starting" if st.starting else ("ready" if st.responding else "not answering")
        click.echo(f"Trino {st.version or '?'} is running on {st.url} ({state})")
        click.echo(f"  pid:      {st.pid}")
        click.echo(f"  uptime:   {st.uptime or '?'}")
        click.echo(f"  java:     {st.java_home}")
        click.echo(f"  catalogs: {', '.join(st.catalogs)}")
        click.echo(f"  instance: {st.instance_dir}")
        click.echo(f"  log:      {st.server_log}")
    else:
        click.echo(f"Trino is not running on port {port} for this lakehouse home")
        click.echo(f"  instance: {st.instance_dir}")
        click.echo(f"  log:      {st.server_log}")
    if not st.running:
        sys.exit(EXIT_PROBLEMS)


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, (datetime, date, dtime)):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    return value


def unique_names(columns: tuple[str, ...]) -> list[str]:
    """Column names made unique for JSON objects: a repeated ``a`` becomes ``a_2``, ``a_3``."""
    seen: dict[str, int] = {}
    out = []
    for name in columns:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
    return out


@trino.command()
@click.argument("query_text", metavar="QUERY")
@settings_options
@port_option
@json_option
def sql(query_text: str, settings: Settings, port: int, json_output: bool) -> None:
    """Run QUERY on the local server and print the rows ('-' reads QUERY from stdin).

    \b
    Connects to 127.0.0.1:--port as user `lakehouse`, catalog `lakehouse`, schema = the
    events table's namespace (analytics by default), so `SELECT * FROM events` works.
    Time travel: SELECT ... FROM events FOR VERSION AS OF <snapshot id>; metadata tables:
    "events$snapshots", "events$files". Prints a table, or with --json an object
    {columns, types, rows (objects; a repeated column name gets _2, _3), row_count}.
    """
    import trino as _client  # sets its own logger to INFO on import; quiet it below

    from lakehouse.trino_server import query

    if logging.getLogger().getEffectiveLevel() > logging.INFO:
        logging.getLogger(_client.__name__).setLevel(logging.WARNING)  # retries are logged at INFO
    text = sys.stdin.read() if query_text == "-" else query_text
    began = time.monotonic()
    result = query(text.strip().rstrip(";"), settings=settings, port=port)
    elapsed = time.monotonic() - began
    if json_output:
        names = unique_names(result.columns)
        print_json(
            {
                "columns": list(result.columns),
                "types": list(result.types),
                "rows": [
                    dict(zip(names, _json_value(list(row)), strict=True)) for row in result.rows
                ],
                "row_count": result.row_count,
                "query_id": result.query_id,
            }
        )
        return
    table = Table(show_edge=False, header_style="bold")
    for name, type_name in zip(result.columns, result.types, strict=True):
        numeric = any(t in type_name for t in ("int", "double", "real", "decimal"))
        table.add_column(name, justify="right" if numeric else "left")
    for row in result.rows:
        table.add_row(*("[dim]NULL[/dim]" if v is None else _cell(v) for v in row))
    console = Console(soft_wrap=False)
    if result.columns:
        console.print(table)
    plural = "" if result.row_count == 1 else "s"
    click.echo(f"({result.row_count} row{plural}, {elapsed:.2f} s)", err=True)


def _cell(value: Any) -> str:
    from rich.markup import escape

    return escape(str(_json_value(value)) if not isinstance(value, str) else value)


trino.add_command(views)


__all__ = ["trino"]
