"""Core commands: init, ingest, demo, health, config."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from lakehouse.cli.common import (
    EXIT_OK,
    EXIT_PROBLEMS,
    EXIT_UNAVAILABLE,
    json_option,
    print_json,
    settings_options,
)
from lakehouse.cli.ingest_follow import FollowOptions, follow_options, run_follow
from lakehouse.cli.ingest_stream import (
    is_stream,
    run_stream,
    stream_health,
    stream_lag_pairs,
    stream_options,
)
from lakehouse.cli.render import health_pairs, ingest_pairs, print_pairs
from lakehouse.settings import Settings


def register(group: click.Group) -> None:
    """Attach the core commands to the ``lakehouse`` group."""
    for command in (init, ingest, demo, health, config):
        group.add_command(command)


def _open(settings: Settings, *, create: bool) -> Any:
    from lakehouse.tables import open_tables

    return open_tables(settings, create=create)


@click.command()
@settings_options
@json_option
def init(settings: Settings, json_output: bool) -> None:
    """Create the events table and its companions (idempotent).

    Creates NAMESPACE.NAME (partitioned by hour(client_ts), sorted by client_ts,
    event_id; Parquet zstd), NAME_rejected (records refused, with reasons) and
    NAME_ingested (landing-zone files already committed). Running it again changes nothing.
    """
    from catalog import open_catalog
    from lakehouse.tables import ensure_tables

    tables, created = ensure_tables(open_catalog(settings), settings.table)
    out = {
        "table": str(settings.table),
        "catalog": settings.catalog_label,
        "created": created,
        "location": tables.events.location(),
    }
    if json_output:
        print_json(out)
    elif created:
        click.echo(f"created {', '.join(created)} in catalog {settings.catalog_label}")
        click.echo(f"table location: {out['location']}")
    else:
        click.echo(
            f"{settings.table} already exists in catalog {settings.catalog_label}; nothing to do"
        )


@contextmanager
def _progress(enabled: bool) -> Iterator[tuple[Any, Any]]:
    """A rich progress bar over files when stderr is a terminal; silent otherwise."""
    if not enabled or not sys.stderr.isatty():
        yield None, None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn("[bold]ingest"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("files"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task("ingest", total=None)

        def on_plan(files: int, nbytes: int, skipped: int) -> None:
            bar.update(task, total=files)

        def advance(files: int, nbytes: int) -> None:
            bar.advance(task, files)

        yield on_plan, advance


def run_ingest(
    paths: list[str],
    settings: Settings,
    *,
    show_progress: bool = True,
    max_files_per_commit: int = 2000,
    create: bool = False,
    include: tuple[str, ...] = (),
    exclude: tuple[str, ...] = (),
    receipt_time: str = "auto",
    look_back: Any = "default",
) -> Any:
    from datetime import timedelta

    from writers import EventWriter
    from writers.ingest import ingest as ingest_files

    tables = _open(settings, create=create)
    writer = EventWriter(
        settings, tables=tables, max_records=1 << 62, max_bytes=1 << 62, max_age=1e12
    )
    with _progress(show_progress) as (on_plan, advance):
        return ingest_files(
            paths,
            settings,
            writer=writer,
            progress=advance,
            on_plan=on_plan,
            max_group_files=max_files_per_commit,
            include=include,
            exclude=exclude,
            receipt_time=receipt_time,
            look_back=timedelta(hours=2) if look_back == "default" else look_back,
        )


@click.command()
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "--max-files-per-commit",
    type=click.IntRange(min=1),
    default=2000,
    show_default=True,
    help="Files grouped into one commit (a group is also capped at 64 MB of input).",
)
@click.option(
    "--create",
    is_flag=True,
    help="Create the table and its companions when missing (as `lakehouse init` does); "
    "without it a missing table is an error.",
)
@click.option(
    "--include",
    multiple=True,
    metavar="GLOB",
    help="Take only files whose key below the path (or name) matches GLOB (repeatable).",
)
@click.option(
    "--exclude",
    multiple=True,
    metavar="GLOB",
    help="Leave out files whose key below the path (or name) matches GLOB (repeatable).",
)
@click.option(
    "--receipt-time",
    type=click.Choice(["auto", "key", "modified", "now"]),
    default="auto",
    show_default=True,
    help="When a record without server_ts was received. auto: the delivery time in a "
    "Firehose object name, else the hour of a YYYY/MM/DD/HH/ key, else the file's "
    "modification time (no later than now); key: only the first two (else now); "
    "modified: the modification time; now: the time of the run.",
)
@click.option(
    "--look-back",
    default="2h",
    show_default=True,
    metavar="DURATION|all",
    help="A zone whose keys start with YYYY/MM/DD/HH/ is listed from the hour of its last "
    "ingested key minus this window (for late deliveries); 'all' lists everything.",
)
@follow_options
@stream_options
@settings_options
@json_option
def ingest(
    paths: tuple[str, ...],
    max_files_per_commit: int,
    create: bool,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    receipt_time: str,
    look_back: str,
    settings: Settings,
    json_output: bool,
    follow: FollowOptions | None,
    start_from: str | None = None,
    poll: float = 1.0,
) -> None:
    """Ingest newline-delimited JSON files from a landing zone, exactly once per file,
    or the records of a Kinesis data stream (kinesis://STREAM), exactly once per record.

    PATHS are files, folders or S3 prefixes, searched recursively. Every regular file is
    a landing file except hidden ones and in-progress markers (names or folders starting
    with '.' or '_', names ending in .tmp); gzip is recognised by content, so Firehose
    objects (no extension, or .gz) are read as they are. A file that is not NDJSON, too
    large (LAKEHOUSE_MAX_FILE_BYTES, default 4 GiB decompressed), or unreadable is a
    reject with its reason; so is a line over LAKEHOUSE_MAX_LINE_BYTES (default 8 MiB).
    Files are read in key order and grouped into few commits. Files already ingested are
    skipped (a file whose size changed since is read again; events already ingested are
    kept once), so re-running over the same landing zone commits nothing new, and a run
    that was killed can simply be run again. The table must exist (`lakehouse init`),
    unless --create is given.

    Exit code 1 when some records were rejected: they are kept in the NAME_rejected table
    with the reason, file and line. Exit 75 when the catalog or storage was unavailable
    (files that could not be read are left for the next run): run it again, files not yet
    committed are picked up then, nothing is committed twice.

    kinesis://STREAM reads every shard (parents before children after a reshard) up to
    its tip and exits, or keeps consuming with --follow; a restart resumes after the last
    committed record of each shard. See docs/streaming.md.
    """
    if is_stream(paths):
        landing = [
            name
            for name, used in (
                ("--include", bool(include)),
                ("--exclude", bool(exclude)),
                ("--receipt-time", receipt_time != "auto"),
                ("--look-back", look_back != "2h"),
            )
            if used
        ]
        if landing:
            raise click.UsageError(f"{', '.join(landing)}: for landing files, not streams")
        run_stream(
            paths[0],
            settings,
            follow=follow is not None,
            start_from=start_from,
            poll=poll,
            json_output=json_output,
            create=create,
        )
    if start_from is not None:
        raise click.UsageError("--from applies to kinesis:// streams")
    from lakehouse.durations import parse_duration

    try:
        window = None if look_back.strip().lower() == "all" else parse_duration(look_back)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--look-back") from exc
    if follow is not None:
        run_follow(
            list(paths),
            settings,
            follow,
            json_output=json_output,
            max_files_per_commit=max_files_per_commit,
            create=create,
            include=include,
            exclude=exclude,
            receipt_time=receipt_time,
            look_back=window,
        )
        sys.exit(EXIT_OK)
    result = run_ingest(
        list(paths),
        settings,
        show_progress=not json_output,
        max_files_per_commit=max_files_per_commit,
        create=create,
        include=include,
        exclude=exclude,
        receipt_time=receipt_time,
        look_back=window,
    )
    data = result.to_dict()
    if json_output:
        print_json(data)
    else:
        print_pairs(
            f"ingest into {settings.table} ({settings.catalog_label} catalog)", ingest_pairs(data)
        )
        for warning in result.warnings:
            click.secho(warning, fg="yellow", err=True)
        if result.records_rejected:
            click.secho(
                f"{result.records_rejected} record(s) rejected; see table {settings.table}_rejected",
                fg="yellow",
            )
    if result.files_deferred:
        sys.exit(EXIT_UNAVAILABLE)
    sys.exit(EXIT_PROBLEMS if result.records_rejected else EXIT_OK)


@click.command()
@click.option("--events", default=200_000, show_default=True, help="How many events to generate.")
@click.option("--days", default=3, show_default=True, help="Days of activity the events span.")
@click.option(
    "--seed", default=7, show_default=True, help="Random seed (same seed, same landing zone)."
)
@click.option(
    "--landing",
    type=click.Path(path_type=Path),
    default=None,
    help="Landing-zone folder [default: LAKEHOUSE_HOME/landing/demo-<seed>-<events>].",
)
@settings_options
@json_option
def demo(
    events: int, days: int, seed: int, landing: Path | None, settings: Settings, json_output: bool
) -> None:
    """Generate a realistic landing zone, ingest it, and show what happened.

    Users with sessions follow a shopping funnel; about 7% of events arrive hours to
    days late, about 3% are sent twice, a few lines are malformed. Files are laid out
    by arrival time (YYYY/MM/DD/HH/) as a delivery stream writes them. Running the demo
    again reuses the landing zone and commits nothing new.
    """
    from lakehouse.demo import DemoSpec, write_landing

    if events < 1 or days < 1:
        raise click.BadParameter("--events and --days must be at least 1")
    root = landing or settings.home / "landing" / f"demo-{seed}-{events}"
    if not json_output:
        click.echo(f"generating {events:,} events over {days} day(s) into {root} ...")
    zone = write_landing(root, DemoSpec(events=events, days=days, seed=seed))
    result = run_ingest([str(root)], settings, show_progress=not json_output, create=True)
    from lakehouse.health import health as table_health

    report = table_health(_open(settings, create=False), settings)
    if json_output:
        print_json(
            {"landing": zone.to_dict(), "ingest": result.to_dict(), "health": report.to_dict()}
        )
        return
    print_pairs(
        "landing zone" + (" (reused)" if zone.reused else ""),
        [
            ("folder", str(root)),
            ("files", zone.files),
            ("events generated", zone.events),
            ("delivered late (>2h)", zone.late_events),
            ("sent twice", zone.resent_events),
            ("malformed lines", zone.malformed_lines),
        ],
    )
    print_pairs(f"ingest into {settings.table}", ingest_pairs(result.to_dict()))
    print_pairs("health", health_pairs(report.to_dict()))
    click.echo("\nnext: `lakehouse health`, `lakehouse maintain run`, or explore with notebooks/")


@click.command()
@settings_options
@json_option
def health(settings: Settings, json_output: bool) -> None:
    """Show the table's health: snapshots, files, small files, files per hour partition,
    late events committed, rejected records (and maintenance lag when available)."""
    from lakehouse.health import health as table_health

    tables = _open(settings, create=False)
    report = table_health(tables, settings)
    streams = stream_health(settings, tables)  # shard lag of the streams ingested
    if json_output:
        print_json({**report.to_dict(), **({"streams": streams} if streams else {})})
    else:
        print_pairs(
            f"health of {settings.table} ({settings.catalog_label} catalog)",
            health_pairs(report.to_dict()),
        )
        for name, shards in (streams or {}).items():
            print_pairs(f"stream {name} (lag per shard)", stream_lag_pairs(shards))


@click.group()
def config() -> None:
    """Inspect the resolved configuration."""


@config.command("show")
@settings_options
@json_option
def config_show(settings: Settings, json_output: bool) -> None:
    """Print the settings in force and the catalog they resolve to (secrets redacted)."""
    from catalog.redacted import redacted_properties

    data = {
        "home": str(settings.home.expanduser().resolve()),
        "catalog": settings.catalog_label,
        "table": str(settings.table),
        "allowed_lateness": settings.allowed_lateness,
        "max_future_skew": settings.max_future_skew,
        "target_file_size": settings.target_file_size,
        "catalog_properties": redacted_properties(settings),
    }
    if json_output:
        print_json(data)
    else:
        from lakehouse.cli.common import to_jsonable

        flat = to_jsonable(data)
        props = flat.pop("catalog_properties")
        print_pairs("settings", list(flat.items()))
        print_pairs("catalog properties", list(props.items()))
