"""The ingest driver: a source's batches into the events table, exactly once per position.

For each batch the driver buffers its payloads in an :class:`EventWriter`, then commits
(a) the events under the batch's key (made from its positions), (b) its rejects under the
same key (both in ``EventWriter.flush``), and (c) its positions in the ledger. A re-run
asks the ledger which positions are committed and the source leaves them out; a run
killed after (a) or (b) re-forms the same batch, whose key is then found and nothing is
written again; a batch formed differently (new input arrived) is still covered by
event-level dedupe (same hours, same ``event_id``) and reject dedupe (same source and
line). So every event of every source lands exactly once, and no source keeps books.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import pyarrow as pa

from lakehouse import faults
from lakehouse.settings import Settings
from writers.ledger import Ledger, batch_key
from writers.parse import join_files, parse_arrow, parse_ndjson
from writers.results import IngestResult, WriteResult
from writers.sources.base import Batch, Payload, Source
from writers.sources.landing import LandingFiles
from writers.writer import EventWriter

Progress = Callable[[int, int], None]
"""Called as payloads are read, with (positions, bytes) read since the last call."""

OnPlan = Callable[[int, int, int], None]
"""Called once the source is planned: (positions pending, bytes pending, skipped)."""

JOIN_BYTES = 32 * 1024 * 1024
"""NDJSON payloads are joined into buffers of about this many (uncompressed) bytes and
parsed, validated and conformed once per buffer, so small files cost little each."""


def ingest(
    locations: Sequence[str],
    settings: Settings | None = None,
    *,
    writer: EventWriter | None = None,
    max_group_files: int = 2000,
    max_group_bytes: int = 64 * 1024 * 1024,
    progress: Progress | None = None,
    on_plan: OnPlan | None = None,
) -> IngestResult:
    """Ingest every not-yet-ingested data file under ``locations`` (landing files).

    ``on_plan(files_pending, bytes_pending, files_skipped)`` is called once files are
    listed; ``progress(files, bytes)`` as files are read.
    """
    writer = writer or _batch_writer(settings)
    source = LandingFiles(
        locations,
        io=writer.tables.events.io,
        max_files=max_group_files,
        max_bytes=max_group_bytes,
    )
    return ingest_source(source, writer=writer, progress=progress, on_plan=on_plan)


def ingest_source(
    source: Source,
    settings: Settings | None = None,
    *,
    writer: EventWriter | None = None,
    progress: Progress | None = None,
    on_plan: OnPlan | None = None,
) -> IngestResult:
    """Ingest what ``source`` holds beyond the positions the ledger has recorded.

    In the result, ``files`` counts the positions committed and ``files_skipped`` those
    already in the ledger. ``on_plan`` is called only when the source knows its pending
    positions up front.
    """
    started = time.perf_counter()
    writer = writer or _batch_writer(settings)
    ledger = Ledger(writer.tables.ingested)
    committed = ledger.committed()
    plan = source.plan(committed)
    skipped = list(plan.skipped)
    if on_plan and plan.pending_positions is not None:
        on_plan(plan.pending_positions, plan.pending_bytes or 0, len(skipped))
    total = WriteResult()
    positions = commits = bytes_read = 0
    batches = plan.batches
    try:
        for batch in batches:
            ids = [p.id for p in batch.positions]
            done = [i in committed for i in ids]
            if not ids or all(done):
                skipped.extend(ids)
                continue
            if any(done):
                raise ValueError(
                    "a batch mixes committed and new positions: "
                    + ", ".join(i for i, d in zip(ids, done, strict=True) if d)
                )
            key = batch_key(batch.positions)
            counts = _buffer(batch, writer, progress)
            total = total + writer.flush(batch_key=key)  # (a) events, (b) rejects
            faults.point("ingest.before-ledger")
            ledger.record(batch.positions, counts, key=key)  # (c) positions
            committed.update(ids)
            commits += 1
            positions += len(ids)
            bytes_read += batch.size
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()
    return IngestResult(
        files=positions,
        files_skipped=len(skipped),
        bytes_read=bytes_read,
        commits=commits,
        records_read=total.records_read,
        records_written=total.records_written,
        duplicates_dropped=total.duplicates_dropped,
        records_rejected=total.records_rejected,
        late_records=total.late_records,
        snapshot_ids=total.snapshot_ids,
        fields_folded=total.fields_folded,
        warnings=total.warnings,
        seconds=time.perf_counter() - started,
        skipped_sources=tuple(skipped),
    )


def _batch_writer(settings: Settings | None) -> EventWriter:
    """A writer that commits only when told (once per batch)."""
    return EventWriter(settings, max_records=1 << 62, max_bytes=1 << 62, max_age=1e12)


def _buffer(batch: Batch, writer: EventWriter, progress: Progress | None) -> list[int]:
    """Parse the batch's payloads in order and buffer their rows in the writer; small
    NDJSON payloads are joined into buffers first. Returns the records read from each
    position (a damaged payload counts one more: its damage is a rejected record)."""
    expected = batch.positions
    counts: list[int] = []
    pending: list[tuple[Payload, bytes]] = []
    pending_bytes = 0

    def parse_pending() -> None:
        nonlocal pending_bytes
        if not pending:
            return
        hints = all(p.newlines is not None and p.objects is not None for p, _ in pending)
        data, line_map = join_files(
            [(p.position.id, d) for p, d in pending],
            newlines=[int(p.newlines or 0) for p, _ in pending] if hints else None,
            objects=[bool(p.objects) for p, _ in pending] if hints else None,
        )
        parsed = parse_ndjson(data, line_map)
        per_position = parsed.per_source or [0] * len(pending)
        for k, (p, _) in enumerate(pending):
            if p.damage:
                parsed.failures.append((p.position.id, None, None, p.damage))
                parsed.records += 1
                per_position[k] += 1
        counts.extend(per_position)
        writer.add_parsed(parsed, receipt_time=[p.received_at for p, _ in pending])
        pending.clear()
        pending_bytes = 0

    seen = 0
    for payload in batch.payloads:
        if seen >= len(expected) or payload.position != expected[seen]:
            raise ValueError(
                f"payload {seen} of a batch is at {payload.position.id!r}, not at the "
                "batch's position of the same rank"
            )
        seen += 1
        if progress:
            progress(1, payload.position.size)
        if isinstance(payload.data, pa.Table):
            parse_pending()
            parsed = parse_arrow(payload.data, payload.position.id)
            if payload.damage:
                parsed.failures.append((payload.position.id, None, None, payload.damage))
                parsed.records += 1
            counts.append(parsed.records)
            writer.add_parsed(parsed, receipt_time=payload.received_at)
            continue
        size = len(payload.data)
        if size >= JOIN_BYTES // 4:  # big enough alone: parse it without a joining copy
            parse_pending()
        pending.append((payload, payload.data))
        pending_bytes += size
        if pending_bytes >= JOIN_BYTES or size >= JOIN_BYTES // 4:
            parse_pending()
    parse_pending()
    if seen != len(expected):
        raise ValueError(f"a batch of {len(expected)} positions gave {seen} payloads")
    return counts
