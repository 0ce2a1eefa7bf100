"""The writer: takes events in any accepted form, buffers them like a delivery stream,
and commits them to the events table by size, age, or on close."""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.catalog import Catalog

from lakehouse import faults
from lakehouse.hours import hour_label
from lakehouse.schema import TIMESTAMP_ARROW, reason_kind
from lakehouse.settings import Settings
from lakehouse.summary import KIND_REJECTS
from lakehouse.tables import EventTables, open_tables
from writers import commit, dedupe, evolution
from writers.fold import fold_into_properties
from writers.normalize import normalize
from writers.parse import ROW_COLUMN, Chunk, Parsed, parse_any
from writers.rejects import Reject, rejects_to_arrow
from writers.results import WriteResult, add_counts

log = logging.getLogger(__name__)


@dataclass
class _Buffer:
    pieces: list[tuple[pa.Table, Chunk]] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    records: int = 0
    nbytes: int = 0
    batch_ids: list[str | None] = field(default_factory=list)
    opened: float | None = None

    def clear(self) -> None:
        self.pieces.clear()
        self.rejects.clear()
        self.batch_ids.clear()
        self.records = self.nbytes = 0
        self.opened = None


class EventWriter:
    """Write events to the lakehouse.

    >>> with EventWriter(Settings.from_env()) as writer:
    ...     writer.write([{"event_id": "e1", "user_id": "u1", "event_type": "view",
    ...                    "client_ts": "2024-05-01T10:00:00Z"}])

    ``write`` accepts iterables of dicts, ``pyarrow`` tables/record batches and ``polars``
    DataFrames. Rows are validated at once (the receipt time is the call's time); they are
    committed when the buffer holds ``max_records`` rows or ``max_bytes`` bytes, when its
    oldest row is ``max_age`` old (checked on each ``write`` and by ``flush_if_due``), on
    ``flush()`` and on close. Each commit returns a :class:`WriteResult`.

    The table and its companions are created when missing (``create=True``, the
    default, as an application's writer expects); ``create=False`` refuses a missing
    table with a :class:`~lakehouse.errors.ConfigError` instead (the CLI's behaviour).
    A companion's name (``..._ingested``, ``..._rejected``, ``..._ordered``) is refused.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        catalog: Catalog | None = None,
        tables: EventTables | None = None,
        create: bool = True,
        max_records: int | None = None,
        max_bytes: int | None = None,
        max_age: float | None = None,
        clock: Callable[[], datetime] | None = None,
        on_commit: Callable[[WriteResult], None] | None = None,
    ) -> None:
        self.settings = settings or Settings.from_env()
        if tables is None:
            tables = open_tables(self.settings, create=create, catalog=catalog)
        self.tables = tables
        self.max_records = max_records or self.settings.buffer_max_records
        self.max_bytes = max_bytes or self.settings.buffer_max_bytes
        self.max_age = (
            max_age if max_age is not None else self.settings.buffer_max_age.total_seconds()
        )
        self._clock = clock or (lambda: datetime.now(UTC))
        self._on_commit = on_commit
        self.writer_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._buffer = _Buffer()
        self._committed = dedupe.CommittedIds()  # ids per hour, kept across own commits
        self.totals = WriteResult()
        self._closed = False

    # -- intake -----------------------------------------------------------------------

    def write(
        self, data: Any, *, batch_id: str | None = None, source: str | None = None
    ) -> WriteResult | None:
        """Validate and buffer ``data``; commit if a threshold is reached (that commit's
        result is returned, else None)."""
        if self._closed:
            raise RuntimeError("this writer is closed")
        label = source or f"batch:{batch_id or uuid.uuid4().hex[:12]}"
        self.add_parsed(parse_any(data, label), receipt_time=self._clock(), batch_id=batch_id)
        return self.flush_if_due()

    def add_parsed(
        self,
        parsed: Parsed,
        *,
        receipt_time: datetime | Sequence[datetime],
        batch_id: str | None = None,
        receipt_estimated: bool = False,
    ) -> None:
        """Buffer rows parsed elsewhere (the landing-zone reader uses this). The receipt
        time is one for all rows, or one per source of the chunks' line map;
        ``receipt_estimated`` says it comes from storage metadata (see
        :func:`writers.normalize.normalize`)."""
        # Everything is validated before the buffer changes: a write that fails leaves
        # the writer as it was.
        rejects = [Reject(reason, src, line, raw) for src, line, raw, reason in parsed.failures]
        pieces: list[tuple[pa.Table, Chunk]] = []
        for chunk in parsed.chunks:
            result = normalize(
                chunk.table,
                receipt_time=_receipts(chunk, receipt_time),
                max_future_skew=self.settings.max_future_skew,
                receipt_estimated=receipt_estimated,
            )
            rejects.extend(_rejects(chunk, result.rejected))
            if result.table.num_rows:
                pieces.append((result.table, chunk))
        buf = self._buffer
        if buf.opened is None:
            buf.opened = time.monotonic()
        buf.records += parsed.records
        buf.batch_ids.append(batch_id)
        buf.rejects.extend(rejects)
        buf.pieces.extend(pieces)
        buf.nbytes += sum(table.nbytes for table, _ in pieces)

    def due(self) -> bool:
        buf = self._buffer
        if buf.records == 0:
            return False
        aged = buf.opened is not None and time.monotonic() - buf.opened >= self.max_age
        return buf.records >= self.max_records or buf.nbytes >= self.max_bytes or aged

    def flush_if_due(self) -> WriteResult | None:
        return self.flush() if self.due() else None

    # -- commit -----------------------------------------------------------------------

    def flush(self, *, batch_key: str | None = None) -> WriteResult:
        """Commit everything buffered as one batch. ``batch_key`` is the idempotency key;
        by default it is derived from the batch ids given to ``write`` or from the content."""
        buf = self._buffer
        if buf.records == 0:
            return WriteResult()
        started = time.perf_counter()
        events = self.tables.events
        plan = evolution.new_columns(
            (t for t, _ in buf.pieces), events.schema(), max_columns=self.settings.max_columns
        )
        added = evolution.evolve(events, plan.columns)
        schema = events.schema()
        columns = {f.name for f in schema.fields}
        parts: list[pa.Table] = []
        rejects = list(buf.rejects)
        for table, chunk in buf.pieces:
            over = [n for n in table.column_names if n not in columns and n != ROW_COLUMN]
            conformed, conflicts = evolution.conform(fold_into_properties(table, over), schema)
            rejects.extend(_rejects(chunk, conflicts))
            if conformed.num_rows:
                parts.append(conformed.drop_columns([ROW_COLUMN]))
        batch = pa.concat_tables(parts) if parts else schema.as_arrow().empty_table()
        batch, in_batch_dupes = dedupe.sort_and_dedupe(batch)
        key = batch_key or self._derive_key(batch, rejects)

        events.refresh()
        already = bool(commit.snapshots_with_key(events, key))
        if already:
            fresh, committed_dupes = batch.slice(0, 0), batch.num_rows
        else:
            fresh, committed_dupes = dedupe.drop_committed(batch, events, self._committed)
        late = (
            dedupe.late_mask(fresh, self.settings.allowed_lateness)
            if fresh.num_rows
            else pa.array([], pa.bool_())
        )
        late_count = pc.sum(late).as_py() or 0
        late_rows = fresh.filter(late) if 0 < late_count < fresh.num_rows else fresh
        on_time_rows = fresh.filter(pc.invert(late)) if 0 < late_count < fresh.num_rows else fresh
        if late_count == 0:
            late_rows = fresh.slice(0, 0)
        elif late_count == fresh.num_rows:
            on_time_rows = fresh.slice(0, 0)
        late_hours = dedupe.hours_of(late_rows.column("client_ts")) if late_rows.num_rows else []
        snapshot_ids = (
            commit.snapshots_with_key(events, key)
            if already
            else commit.commit_events(
                events,
                on_time_rows,
                late_rows,
                key=key,
                late_hours=late_hours,
                writer=self.writer_id,
            )
        )
        if not already:
            self._committed.record(events, fresh, snapshot_ids)
        faults.point("write.events-committed")
        to_store = _not_yet_rejected(self.tables.rejected, rejects)  # counted either way
        if to_store:
            commit.append_with_key(
                self.tables.rejected,
                rejects_to_arrow(to_store, batch_key=key, at=self._clock()),
                key=key,
                kind=KIND_REJECTS,
            )
            faults.point("write.rejects-committed")
        result = WriteResult(
            records_read=buf.records,
            records_written=fresh.num_rows,
            duplicates_dropped=in_batch_dupes + committed_dupes,
            records_rejected=len(rejects),
            rejected_by_reason=add_counts(Counter(reason_kind(r.reason) for r in rejects), {}),
            late_records=late_rows.num_rows,
            on_time_records=on_time_rows.num_rows,
            snapshot_ids=tuple(snapshot_ids),
            batch_keys=(key,),
            already_committed=1 if already else 0,
            new_columns=tuple(added),
            fields_folded=len(plan.folded),
            warnings=(warning,) if (warning := plan.warning()) else (),
            late_hours=tuple(hour_label(h) for h in late_hours),
            seconds=time.perf_counter() - started,
        )
        assert (
            result.records_read
            == result.records_written + result.duplicates_dropped + result.records_rejected
        ), result
        buf.clear()
        self.totals = self.totals + result
        log.info(
            "committed batch %s: %d written (%d late), %d duplicates, %d rejected in %.2fs",
            key,
            result.records_written,
            result.late_records,
            result.duplicates_dropped,
            result.records_rejected,
            result.seconds,
        )
        for warning in result.warnings:
            log.warning("%s: %s", self.tables.events.name(), warning)
        if self._on_commit:
            self._on_commit(result)
        return result

    def _derive_key(self, batch: pa.Table, rejects: list[Reject]) -> str:
        ids = [i for i in self._buffer.batch_ids if i is not None]
        if ids and len(ids) == len(self._buffer.batch_ids):
            joined = "\x00".join(sorted(ids)).encode()
            return "b-" + hashlib.blake2b(joined, digest_size=16).hexdigest()
        key = commit.content_key(batch)
        if rejects:
            digest = hashlib.blake2b(key.encode(), digest_size=16)
            for r in sorted(rejects, key=lambda r: (r.raw or "", r.reason)):
                digest.update(
                    (r.raw or "").encode("utf-8", "backslashreplace") + b"\x00" + r.reason.encode()
                )
            key = "c-" + digest.hexdigest()
        return key

    # -- lifecycle --------------------------------------------------------------------

    def close(self) -> WriteResult:
        """Commit what is buffered and close. Returns the totals over the writer's life."""
        if not self._closed:
            self.flush()
            self._closed = True
        return self.totals

    def __enter__(self) -> EventWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            # Buffered rows were never acknowledged; commit them anyway so nothing that
            # was handed over is lost, unless committing is what failed.
            try:
                self.close()
            except Exception:  # the original error matters more
                log.exception("could not commit the buffer while handling %s", exc_type.__name__)


def _not_yet_rejected(table: Any, rejects: list[Reject]) -> list[Reject]:
    """Drop file rejects already recorded: a line by source and line, a whole file (no
    line, no raw payload) by source and reason. A landing file that is re-read after a
    crash or after it changed must not have its rejects recorded twice."""
    from lakehouse.expressions import is_in

    def whole(r: Reject) -> bool:
        return r.line is None and r.raw is None

    sources = sorted({r.source for r in rejects if r.line is not None or whole(r)})
    if not sources:
        return rejects
    table.refresh()
    if table.current_snapshot() is None:
        return rejects
    seen = table.scan(
        row_filter=is_in("source", sources), selected_fields=("source", "line", "reason")
    ).to_arrow()
    lines = seen.column("line").to_pylist()
    known = {
        (source, line if line is not None else reason)
        for source, line, reason in zip(
            seen.column("source").to_pylist(), lines, seen.column("reason").to_pylist(), strict=True
        )
    }
    return [
        r
        for r in rejects
        if not (
            (r.line is not None and (r.source, r.line) in known)
            or (whole(r) and (r.source, r.reason) in known)
        )
    ]


def _rejects(chunk: Chunk, rejected: list[tuple[int, str]]) -> list[Reject]:
    out = []
    for row, reason in rejected:
        source, line = chunk.origin(row)
        out.append(Reject(reason, source, line, chunk.raw_of(row)))
    return out


def _receipts(chunk: Chunk, receipt_time: datetime | Sequence[datetime]) -> datetime | pa.Array:
    """The receipt time of each row: one for all, or one per source file of the chunk."""
    if isinstance(receipt_time, datetime):
        return receipt_time
    rows = chunk.table.column(ROW_COLUMN).to_numpy()
    index = chunk.source_index(rows)
    if index is None:
        raise ValueError("per-source receipt times need NDJSON input parsed with a line map")
    micros = np.asarray([int(t.timestamp() * 1_000_000) for t in receipt_time], np.int64)
    return pa.array(micros[index], pa.int64()).cast(TIMESTAMP_ARROW)
