"""``lakehouse ingest kinesis://STREAM [--follow] [--from ...]``: a Kinesis data stream
into the events table, exactly once per record.

Without ``--follow`` every shard is read up to its tip and the command exits (code 1
when some records were rejected). With ``--follow`` it keeps consuming until SIGTERM or
SIGINT: the batch in flight is committed, then exit 0. Each batch is one line on stderr,
or one JSON object on stdout with ``--json``; an outage (Kinesis, the catalog, the
storage) is reported and retried with back-off while the follower runs on. The followers
of one stream and table take turns through an ingest lease (a property of the
``_ingested`` table); correctness never depends on it (batch keys and the ledger do).
"""

from __future__ import annotations

import hashlib
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import click

from lakehouse.cli.common import EXIT_OK, EXIT_PROBLEMS, json_text, print_json
from lakehouse.settings import Settings

if TYPE_CHECKING:
    from writers import EventWriter
    from writers.sources.base import Batch, LedgerView, Plan
    from writers.sources.kinesis import KinesisStream
    from writers.sources.kinesis_client import StreamClient

F = TypeVar("F", bound=Callable[..., Any])

LEASE_PREFIX = "lakehouse.ingest.lease."
MAX_BACKOFF = 300.0


def stream_options(func: F) -> F:
    """``--from`` and ``--poll`` (streams only)."""
    func = click.option(
        "--from",
        "start_from",
        default=None,
        metavar="trim-horizon|latest|TIME",
        help="Streams (kinesis://) never read before: start at the oldest record kept "
        "(trim-horizon, the default), at the first run's time (latest) or at an ISO-8601 "
        "time. Ignored once the stream has committed positions: a run resumes after them.",
    )(func)
    return click.option(
        "--poll",
        type=click.FloatRange(min=0.05),
        default=1.0,
        show_default=True,
        help="Streams with --follow: seconds between reads of a shard at its tip.",
    )(func)


def is_stream(paths: tuple[str, ...] | list[str]) -> bool:
    from writers.sources.kinesis import is_stream_uri

    streams = [p for p in paths if is_stream_uri(p)]
    if streams and len(paths) > 1:
        raise click.UsageError("ingest one stream at a time (kinesis://STREAM), without paths")
    return bool(streams)


def stream_client(stream: str, properties: dict[str, Any]) -> StreamClient:
    """The stream's client, from the catalog's properties or the environment."""
    from writers.sources.kinesis_client import StreamClient, kinesis_client, stream_settings

    region = properties.get("glue.region") or properties.get("s3.region")
    return StreamClient(kinesis_client(stream_settings(properties), region), stream)


def run_stream(
    uri: str,
    settings: Settings,
    *,
    follow: bool,
    start_from: str | None,
    poll: float,
    json_output: bool,
    create: bool,
) -> None:
    """Ingest the stream ``uri`` (see the module's text); exits the process."""
    from lakehouse.tables import open_tables
    from writers.sources.kinesis import StartFrom, stream_name

    stream = stream_name(uri)
    start = StartFrom.parse(start_from) if start_from else None
    if not follow:
        tables = open_tables(settings, create=create)
        client = stream_client(stream, dict(tables.events.io.properties))
        _once(uri, stream, client, settings, tables, start=start, json_output=json_output)
    from lakehouse.cli.maintain_cmd import graceful_stop

    # the handlers go in before anything slow: SIGTERM while the tables open is a clean stop
    with graceful_stop() as stop:
        tables = open_tables(settings, create=create)
        client = stream_client(stream, dict(tables.events.io.properties))
        _follow(
            uri,
            stream,
            client,
            settings,
            start=start,
            poll=poll,
            json_output=json_output,
            stop=stop,
        )
    sys.exit(EXIT_OK)


def _source(
    stream: str,
    client: StreamClient,
    settings: Settings,
    **kwargs: Any,
) -> KinesisStream:
    from writers.sources.kinesis import KinesisStream

    return KinesisStream(
        stream,
        client,
        max_records=settings.buffer_max_records,
        max_bytes=settings.buffer_max_bytes,
        max_age=settings.buffer_max_age.total_seconds(),
        **kwargs,
    )


def _writer(settings: Settings, tables: Any) -> EventWriter:
    from writers import EventWriter

    return EventWriter(
        settings, tables=tables, max_records=1 << 62, max_bytes=1 << 62, max_age=1e12
    )


def _once(
    uri: str,
    stream: str,
    client: StreamClient,
    settings: Settings,
    tables: Any,
    *,
    start: Any,
    json_output: bool,
) -> None:
    from lakehouse.cli.render import ingest_pairs, print_pairs
    from writers.ingest import ingest_source

    source = _source(stream, client, settings, start=start)
    result = ingest_source(source, writer=_writer(settings, tables))
    data = {
        **result.to_dict(),
        "stream": uri,
        "shards": {k: v.__dict__ for k, v in sorted(source.states.items())},
    }
    data.pop("skipped_sources", None)
    if json_output:
        print_json(data)
    else:
        names = {"files ingested": "shard positions committed"}
        pairs = [
            (names.get(k, k), v) for k, v in ingest_pairs(data) if k != "files already ingested"
        ]
        print_pairs(f"ingest {uri} into {settings.table}", pairs)
        if result.records_rejected:
            click.secho(
                f"{result.records_rejected} record(s) rejected; see table {settings.table}_rejected",
                fg="yellow",
            )
    sys.exit(EXIT_PROBLEMS if result.records_rejected else EXIT_OK)


class _Reporting:
    """The source, with a report after each batch the driver committed."""

    def __init__(self, source: KinesisStream, writer: EventWriter, emit: Callable[..., None]):
        self.source, self.writer, self.emit = source, writer, emit
        self.batches = 0

    def plan(self, ledger: LedgerView) -> Plan:
        from dataclasses import replace

        plan = self.source.plan(ledger)
        return replace(plan, batches=self._watch(plan.batches))

    def _watch(self, batches: Iterator[Batch]) -> Iterator[Batch]:
        try:
            for batch in batches:
                before = self.writer.totals
                yield batch  # the driver commits it before asking for the next
                after = self.writer.totals
                self.batches += 1
                self.emit(
                    {
                        "batch": self.batches,
                        "positions": [p.id for p in batch.positions],
                        "records": after.records_read - before.records_read,
                        "written": after.records_written - before.records_written,
                        "duplicates": after.duplicates_dropped - before.duplicates_dropped,
                        "rejected": after.records_rejected - before.records_rejected,
                        "late": after.late_records - before.late_records,
                        "millis_behind": {
                            s.shard: s.millis_behind for s in self.source.states.values()
                        },
                    }
                )
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()


def _follow(
    uri: str,
    stream: str,
    client: StreamClient,
    settings: Settings,
    *,
    start: Any,
    poll: float,
    json_output: bool,
    stop: threading.Event,
) -> None:
    """Consume until ``stop`` is set (SIGTERM/SIGINT); an outage is reported and retried
    with back-off."""
    from lakehouse.errors import ConfigError, UsageError
    from lakehouse.redact import redact_text
    from lakehouse.storage import transient_storage_error
    from lakehouse.tables import open_tables
    from writers.ingest import ingest_source

    def emit(line: dict[str, Any], *, error: bool = False) -> None:
        line = {"at": datetime.now(UTC).isoformat(timespec="seconds"), "stream": uri, **line}
        if json_output:
            click.echo(json_text(line), err=error)
        elif error:
            click.echo(f"{line['at']} {uri}: {line['type']}: {line['message']}", err=True)
        else:
            click.echo(
                f"{line['at']} {uri} batch {line['batch']}: {line['records']} records "
                f"({line['written']} written, {line['late']} late, {line['duplicates']} "
                f"duplicates, {line['rejected']} rejected)",
                err=True,
            )

    if json_output:
        click.echo(json_text({"stream": uri, "table": str(settings.table), "following": True}))
    else:
        click.echo(f"following {uri} into {settings.table} (poll {poll:g}s)", err=True)
    lease = _StreamLease(uri)
    failures = 0
    first = True
    try:
        while not stop.is_set():
            try:
                tables = open_tables(settings, create=False)
                held_by = lease.take(tables.ingested)
                if held_by is not None:
                    emit({"standby": held_by})
                    stop.wait(max(poll, lease.ttl.total_seconds() / 3))
                    continue
                writer = _writer(settings, tables)
                source = _source(
                    stream,
                    client,
                    settings,
                    start=start,
                    follow=True,
                    stop=stop,
                    poll=poll,
                    tick=lease.keep,
                )
                ingest_source(_Reporting(source, writer, emit), writer=writer)
                failures = 0
            except Exception as raised:  # reported, then tried again
                exc: Exception = transient_storage_error(raised) or raised
                if first and isinstance(exc, (ConfigError, UsageError)):
                    raise  # a wrong stream name or a missing table will not fix itself
                failures += 1
                wait = _backoff(poll, failures)
                emit(
                    {
                        "type": type(exc).__name__,
                        "message": redact_text(" ".join(str(exc).split())),
                        "retryable": bool(getattr(exc, "retryable", False)),
                        "next_in": wait,
                    },
                    error=True,
                )
                stop.wait(wait)
            first = False
    finally:
        lease.give_back()
    if json_output:
        click.echo(json_text({"stream": uri, "stopped": True}))
    else:
        click.echo(f"stopped following {uri}", err=True)


def _backoff(poll: float, failures: int) -> float:
    return float(min(MAX_BACKOFF, max(1.0, poll) * 2 ** min(failures - 1, 16)))


class _StreamLease:
    """The stream's ingest lease: ``lakehouse.ingest.lease.<digest of the URI>`` on the
    ``_ingested`` table (:class:`maintenance.lease.TableLease` under its own key)."""

    def __init__(self, uri: str, ttl: timedelta = timedelta(minutes=1)) -> None:
        from maintenance.lease import default_owner

        digest = hashlib.blake2b(uri.rstrip("/").encode(), digest_size=6).hexdigest()
        self.key = LEASE_PREFIX + digest
        self.ttl = ttl
        self.owner = default_owner()
        self.lease: Any = None
        self.lock = threading.Lock()

    def take(self, table: Any) -> str | None:
        from maintenance.errors import LeaseHeldError
        from maintenance.lease import TableLease

        if self.lease is None:
            self.lease = TableLease(
                table, owner=self.owner, ttl=self.ttl, key=self.key, what="ingest lease"
            )
        self.lease.table = table
        try:
            self.lease.acquire()
        except LeaseHeldError as exc:
            return str(exc)
        return None

    def keep(self) -> None:
        """Renew when due (between reads); a lost lease stops the run with an error."""
        if self.lease is not None and self.lease.lease is not None:
            self.lease.renew_if_due()

    def give_back(self) -> None:
        if self.lease is None or self.lease.lease is None:
            return
        try:
            self.lease.release()
        except Exception as exc:  # the catalog is down: the lease lapses by itself
            click.echo(f"could not give back the ingest lease: {exc}", err=True)


def stream_health(settings: Settings, tables: Any) -> dict[str, Any] | None:
    """Each stream's shard lag, for ``lakehouse health`` (None: no stream ingested)."""
    from writers.ledger import Ledger
    from writers.sources.kinesis_lag import shard_lag, streams_in

    ledger = Ledger(tables.ingested)
    names = streams_in(ledger)
    if not names:
        return None
    out: dict[str, Any] = {}
    for name in names:
        try:
            client = stream_client(name, dict(tables.events.io.properties))
            out[name] = [lag.to_dict() for lag in shard_lag(ledger, client)]
        except Exception as exc:  # health reports, it does not fail on a stream
            out[name] = {"error": " ".join(str(exc).split())}
    return out


def stream_lag_pairs(shards: Any) -> list[tuple[str, Any]]:
    """A stream's lag as text rows: one per shard not yet finished."""
    if isinstance(shards, dict):
        return [("error", shards.get("error"))]
    return [
        (
            s["shard"] + (" (closed)" if s["closed"] else ""),
            f"{s['records_behind']}{'+' if s['at_least'] else ''} records, "
            f"{s['seconds_behind']:.0f} s behind",
        )
        for s in shards
    ] or [("shards", "all caught up")]


__all__ = ["is_stream", "run_stream", "stream_health", "stream_lag_pairs", "stream_options"]
