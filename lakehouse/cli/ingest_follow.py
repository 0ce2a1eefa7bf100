"""``lakehouse ingest PATH... --follow``: continuous ingest of a landing zone.

The loop itself is :func:`writers.follow.follow`; this module adds the options, the
signals (SIGTERM/SIGINT: the commit in flight finishes, then exit 0), the lease that
lets one of several followers of a zone and table do the work, and the output: one line
per cycle on stderr, or one JSON object per cycle on stdout with ``--json``.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import click

from lakehouse.cli.common import Duration, json_text
from lakehouse.durations import format_duration
from lakehouse.settings import Settings

if TYPE_CHECKING:
    from writers import EventWriter
    from writers.follow import CycleReport

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger(__name__)

LEASE_PREFIX = "lakehouse.ingest.lease."
"""The lease of the followers of one zone is the ``_ingested`` table's property
``lakehouse.ingest.lease.<zone>``, ``<zone>`` a digest of the zone's locations."""


@dataclass(frozen=True)
class FollowOptions:
    every: timedelta
    settle: timedelta
    lease: bool
    lease_ttl: timedelta


def follow_options(func: F) -> F:
    """``--follow``, ``--every``, ``--settle``, ``--no-lease``, ``--lease-ttl``, passed to
    the command as ``follow``: a :class:`FollowOptions`, or None without ``--follow``."""

    @click.option(
        "--follow",
        is_flag=True,
        help="Keep running: list the zone again every --every and ingest what is new, until "
        "SIGTERM or SIGINT (the commit in flight finishes; exit 0). One line per cycle on "
        "stderr (one JSON object per cycle on stdout with --json). Catalog and storage "
        "outages are reported and retried with back-off; the follower does not exit.",
    )
    @click.option(
        "--every",
        type=Duration(),
        default=None,
        help="With --follow: time from the start of one cycle to the next [default 30s].",
    )
    @click.option(
        "--settle",
        type=Duration(),
        default=None,
        help="With --follow: a file modified less than this long ago may still be being "
        "written; it waits for a later cycle [default 10s].",
    )
    @click.option(
        "--no-lease",
        is_flag=True,
        help="With --follow: do not take the zone's ingest lease (one follower only, or a "
        "REST catalog). Two followers without it still ingest every file once, but both "
        "do the work.",
    )
    @click.option(
        "--lease-ttl",
        type=Duration(),
        default=None,
        help="With --follow: how long the ingest lease lasts without renewal; a follower "
        "that died holds it this long [default: 3x --every, at least 1m].",
    )
    @functools.wraps(func)
    def wrapper(
        *args: Any,
        follow: bool,
        every: timedelta | None,
        settle: timedelta | None,
        no_lease: bool,
        lease_ttl: timedelta | None,
        **kwargs: Any,
    ) -> Any:
        from writers.follow import DEFAULT_EVERY, DEFAULT_SETTLE

        given = [
            name
            for name, value in (
                ("--every", every),
                ("--settle", settle),
                ("--no-lease", no_lease or None),
                ("--lease-ttl", lease_ttl),
            )
            if value is not None
        ]
        if not follow and given:
            raise click.UsageError(f"{', '.join(given)} needs --follow")
        if every is not None and every <= timedelta(0):
            raise click.BadParameter("must be more than 0s", param_hint="--every")
        every = every or DEFAULT_EVERY
        options = (
            FollowOptions(
                every=every,
                settle=DEFAULT_SETTLE if settle is None else settle,
                lease=not no_lease,
                lease_ttl=lease_ttl or max(timedelta(minutes=1), 3 * every),
            )
            if follow
            else None
        )
        return func(*args, follow=options, **kwargs)

    return wrapper  # type: ignore[return-value]


def zone_digest(locations: Sequence[str]) -> str:
    """The same zone named the same way: absolute local paths, no trailing slash."""
    names = sorted(
        (loc if "://" in loc else os.path.abspath(loc)).rstrip("/") or "/" for loc in locations
    )
    return hashlib.blake2b("\n".join(names).encode(), digest_size=6).hexdigest()


class IngestLease:
    """The zone's ingest lease (:class:`maintenance.lease.TableLease` under its own
    property of the ``_ingested`` table), as the follower's :class:`writers.follow.Turn`."""

    def __init__(self, locations: Sequence[str], ttl: timedelta) -> None:
        from maintenance.lease import default_owner

        self.key = LEASE_PREFIX + zone_digest(locations)
        self.ttl = ttl
        self.owner = default_owner()
        self.lease: Any = None  # the TableLease, made on the first cycle

    def take(self, writer: EventWriter) -> str | None:
        from lakehouse.errors import ConfigError
        from maintenance.errors import LeaseHeldError, LeaseUnsupportedError
        from maintenance.lease import TableLease

        table = writer.tables.ingested
        if self.lease is None:
            self.lease = TableLease(
                table, owner=self.owner, ttl=self.ttl, key=self.key, what="ingest lease"
            )
        self.lease.table = table  # the cycle's fresh table object
        if self.lease.lease is not None and self.lease.renew_if_due():
            return None
        try:
            self.lease.acquire()
        except LeaseHeldError as exc:
            return str(exc)
        except LeaseUnsupportedError as exc:
            raise ConfigError(
                "the ingest lease needs a catalog that validates commit requirements "
                "client-side (SQL, Glue, Hive, DynamoDB); on a REST catalog run one "
                "follower per zone with --no-lease"
            ) from exc
        return None

    def keep(self) -> bool:
        return self.lease is not None and bool(self.lease.renew_if_due())

    def give_back(self) -> None:
        if self.lease is None or self.lease.lease is None:
            return
        try:
            self.lease.release()
        except Exception as exc:  # the catalog is down: the lease lapses after its ttl
            log.warning("could not give back the ingest lease (it lapses by itself): %s", exc)


def run_follow(
    paths: list[str],
    settings: Settings,
    options: FollowOptions,
    *,
    json_output: bool,
    max_files_per_commit: int,
    create: bool,
    include: tuple[str, ...] = (),
    exclude: tuple[str, ...] = (),
    receipt_time: str = "auto",
    look_back: timedelta | None = timedelta(hours=2),
) -> None:
    """Follow ``paths`` until SIGTERM/SIGINT; the landing options are as for one run."""
    from lakehouse.cli.maintain_cmd import graceful_stop
    from lakehouse.tables import open_tables
    from writers import EventWriter
    from writers.follow import follow
    from writers.sources.landing import LandingFiles
    from writers.sources.listing import Selection

    first = [create]

    def make_writer() -> EventWriter:
        tables = open_tables(settings, create=first[0])
        first[0] = False
        return EventWriter(
            settings, tables=tables, max_records=1 << 62, max_bytes=1 << 62, max_age=1e12
        )

    def make_source(writer: EventWriter) -> LandingFiles:
        return LandingFiles(
            paths,
            io=writer.tables.events.io,
            max_files=max_files_per_commit,
            settle=options.settle,
            selection=Selection(include, exclude),
            receipt_time=receipt_time,
            look_back=look_back,
        )

    if not json_output:
        lease = f"lease ttl {format_duration(options.lease_ttl)}" if options.lease else "no lease"
        click.echo(
            f"following {' '.join(paths)} into {settings.table} every "
            f"{format_duration(options.every)} (settle {format_duration(options.settle)}, {lease})",
            err=True,
        )
    turn = IngestLease(paths, options.lease_ttl) if options.lease else None
    with graceful_stop() as stop:
        follow(
            make_source,
            make_writer,
            every=options.every,
            stop=stop,
            turn=turn,
            on_cycle=functools.partial(_emit, json_output=json_output),
        )


def _emit(report: CycleReport, *, json_output: bool) -> None:
    if json_output:
        click.echo(json_text(report.to_dict()))
        for error in report.errors:
            click.echo(json_text(error), err=True)
        return
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    head = f"{stamp} ingest cycle {report.cycle}"
    if report.errors:
        e = report.errors[0]
        click.echo(
            f"{head} failed (next try in {report.next_in:.0f}s): {e['type']}: {e['message']}",
            err=True,
        )
        return
    if report.standby:
        click.echo(f"{head}: standby: {report.standby}", err=True)
        return
    click.echo(
        f"{head}: {report.files} files, {report.records} records ({report.rejected} rejected, "
        f"{report.late} late, {report.duplicates} duplicates) in {report.commits} commits, "
        f"{report.seconds:.2f}s" + (", stopping" if report.stopped else ""),
        err=True,
    )
