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
from dataclasses import replace
from datetime import timedelta

import pyarrow as pa

from catalog.files import prefetch_manifests
from lakehouse import faults
from lakehouse.settings import Settings
from writers.ledger import Ledger, batch_key
from writers.parse import Parsed, join_files, parse_arrow, parse_ndjson
from writers.results import IngestResult, WriteResult
from writers.sources.base import Batch, Payload, Position, Source
from writers.sources.landing import LandingFiles
from writers.sources.listing import Selection
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
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    receipt_time: str = "auto",
    look_back: timedelta | None = timedelta(hours=2),
    quiet: timedelta | None = None,
) -> IngestResult:
    """Ingest every not-yet-ingested landing file under ``locations``.

    ``on_plan(files_pending, bytes_pending, files_skipped)`` is called once files are
    listed; ``progress(files, bytes)`` as files are read. ``include``/``exclude`` are
    globs, ``receipt_time`` a mode of :mod:`writers.sources.receipt`, ``look_back`` how far
    a time-ordered zone is listed before its last ingested hour (None: list it all),
    ``quiet`` how long an incomplete last line waits (None: ``LAKEHOUSE_LANDING_QUIET``).
    """
    writer = writer or _batch_writer(settings)
    source = LandingFiles(
        locations,
        io=writer.tables.events.io,
        max_files=max_group_files,
        max_bytes=max_group_bytes,
        selection=Selection(tuple(include), tuple(exclude)),
        receipt_time=receipt_time,
        look_back=look_back,
        quiet=quiet,
    )
    return ingest_source(source, writer=writer, progress=progress, on_plan=on_plan)


def ingest_source(
    source: Source,
    settings: Settings | None = None,
    *,
    writer: EventWriter | None = None,
    progress: Progress | None = None,
    on_plan: OnPlan | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> IngestResult:
    """Ingest what ``source`` holds beyond the positions the ledger has recorded.

    In the result, ``files`` counts the positions committed and ``files_skipped`` those
    already in the ledger. ``on_plan`` is called only when the source knows its pending
    positions up front. ``should_stop`` is asked before each batch: once it says yes, the
    run ends there (the batch in flight has finished; the rest is left for the next run).
    """
    started = time.perf_counter()
    writer = writer or _batch_writer(settings)
    for table in (writer.tables.ingested, writer.tables.events):
        prefetch_manifests(table)  # read while the source plans (the ledger, a listing)
    ledger = Ledger(writer.tables.ingested)
    ledger.evolve()  # a ledger made before fingerprints gains the column
    plan = source.plan(ledger)
    skipped = list(plan.skipped)
    warnings: list[str] = list(plan.notes)
    if on_plan and plan.pending_positions is not None:
        on_plan(plan.pending_positions, plan.pending_bytes or 0, len(skipped))
    total = WriteResult()
    positions = commits = bytes_read = deferred = waiting = grown = reread = 0
    ours: set[str] = set()  # committed by this run
    batches = plan.batches
    try:
        for batch in batches:
            if should_stop is not None and should_stop():
                break
            ids = [p.id for p in batch.positions]
            asked = ids and not plan.checked
            known = ledger.committed_among(i for i in ids if i not in ours) if asked else {}
            done = [p.id in ours or known.get(p.id) == p.size for p in batch.positions]
            if not ids or all(done):
                skipped.extend(ids)
                continue
            if any(done):
                raise ValueError(
                    "a batch mixes committed and new positions: "
                    + ", ".join(i for i, d in zip(ids, done, strict=True) if d)
                )
            counts, later, consumed, read_info = _buffer(batch, writer, progress)
            read = tuple(p for k, p in enumerate(batch.positions) if k not in later)
            for k, (why, waits) in later.items():
                warnings.append(f"{batch.positions[k].id} left for the next run: {why}")
                deferred += 0 if waits else 1
                waiting += 1 if waits else 0
            if not read:
                continue
            key = batch_key(read)
            total = total + writer.flush(batch_key=key)  # (a) events, (b) rejects
            kept = [k for k in range(len(ids)) if k not in later]
            for k, size in consumed.items():
                if size < batch.positions[k].size:
                    warnings.append(
                        f"{batch.positions[k].id}: its last line is incomplete and the file "
                        "was modified moments ago; that line waits for the next run"
                    )
            infos = [read_info[k] for k in kept]
            for k in kept:
                if read_info[k].reread:
                    warnings.append(f"{batch.positions[k].id} read again: {read_info[k].reread}")
            faults.point("ingest.before-ledger")
            ledger.record(  # (c) positions, at the size read (a file that waits: its part)
                [Position(read[n].id, consumed.get(k, read[n].size)) for n, k in enumerate(kept)],
                [counts[k] for k in kept],
                key=key,
                fingerprints=[i.fingerprint for i in infos],
                lines=[i.lines for i in infos],
            )
            ours.update(p.id for p in read)
            commits += 1
            positions += len(read)
            bytes_read += sum(p.size - i.start for p, i in zip(read, infos, strict=True))
            grown += sum(1 for i in infos if i.start > 0)
            reread += sum(1 for i in infos if i.reread)
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()
    return IngestResult(
        files=positions,
        files_skipped=len(skipped),
        files_deferred=deferred,
        files_waiting=waiting,
        files_grown=grown,
        files_reread=reread,
        bytes_read=bytes_read,
        commits=commits,
        records_read=total.records_read,
        records_written=total.records_written,
        duplicates_dropped=total.duplicates_dropped,
        records_rejected=total.records_rejected,
        rejected_by_reason=total.rejected_by_reason,
        late_records=total.late_records,
        snapshot_ids=total.snapshot_ids,
        fields_folded=total.fields_folded,
        warnings=tuple(warnings) + total.warnings,
        seconds=time.perf_counter() - started,
        skipped_sources=tuple(skipped),
    )


def _batch_writer(settings: Settings | None) -> EventWriter:
    """A writer that commits only when told (once per batch)."""
    return EventWriter(settings, max_records=1 << 62, max_bytes=1 << 62, max_age=1e12)


def _buffer(
    batch: Batch, writer: EventWriter, progress: Progress | None
) -> tuple[list[int], dict[int, tuple[str, bool]], dict[int, int], list[Payload]]:
    """Parse the batch's payloads in order and buffer their rows in the writer; small
    NDJSON payloads are joined into buffers first; a payload in ``parts`` is parsed part by
    part, each under its own name and receipt time. Returns the records read from each
    position (each problem a payload reports counts one more: it is a rejected record)
    the positions deferred to a later run (by rank: the reason, whether it waits for
    complete input rather than for storage), the part read of positions read in part, and
    each payload without its data (where it started, its fingerprint, lines, why re-read)."""
    expected = batch.positions
    counts = [0] * len(expected)
    later: dict[int, tuple[str, bool]] = {}
    consumed: dict[int, int] = {}
    pending: list[tuple[Payload, int, bool]] = []  # (payload or part, its rank, is a part)
    pending_bytes = 0
    infos: list[Payload] = []

    def parse_pending() -> None:
        nonlocal pending_bytes
        if not pending:
            return
        hints = all(p.newlines is not None and p.objects is not None for p, _, _ in pending)
        data, line_map = join_files(
            [(p.position.id, _ndjson(p)) for p, _, _ in pending],
            newlines=[int(p.newlines or 0) for p, _, _ in pending] if hints else None,
            objects=[bool(p.objects) for p, _, _ in pending] if hints else None,
            lines_before=[p.lines_before for p, _, _ in pending],
        )
        parsed = parse_ndjson(data, line_map)
        per_position = parsed.per_source or [0] * len(pending)
        for k, (p, rank, part) in enumerate(pending):
            # a part's damage names the first line it lost (so a re-read is deduplicated)
            line = _ndjson(p).count(b"\n") + 1 if part and p.damage else None
            added = _add_problems(parsed, p, damage_line=line)
            parsed.records += added
            counts[rank] += per_position[k] + added
        writer.add_parsed(
            parsed,
            receipt_time=[p.received_at for p, _, _ in pending],
            receipt_estimated=pending[0][0].receipt_estimated,
        )
        pending.clear()
        pending_bytes = 0

    seen = 0
    for payload in batch.payloads:
        if seen >= len(expected) or payload.position != expected[seen]:
            raise ValueError(
                f"payload {seen} of a batch is at {payload.position.id!r}, not at the "
                "batch's position of the same rank"
            )
        rank = seen
        seen += 1
        infos.append(replace(payload, data=b""))
        if progress:
            progress(1, payload.position.size - payload.start)
        if payload.deferred is not None:
            parse_pending()
            later[rank] = (payload.deferred, payload.waiting)
            continue
        if payload.consumed is not None:
            consumed[rank] = payload.consumed
        if isinstance(payload.data, pa.Table) and payload.parts is None:
            parse_pending()
            parsed = parse_arrow(payload.data, payload.position.id)
            parsed.records += _add_problems(parsed, payload)
            counts[rank] = parsed.records
            writer.add_parsed(
                parsed,
                receipt_time=payload.received_at,
                receipt_estimated=payload.receipt_estimated,
            )
            continue
        parts = payload.parts is not None
        for piece in payload.parts if payload.parts is not None else (payload,):
            size = len(_ndjson(piece))
            if size >= JOIN_BYTES // 4 or (
                pending and pending[0][0].receipt_estimated != piece.receipt_estimated
            ):  # big enough alone (parse it without a joining copy), or receipt of another kind
                parse_pending()
            pending.append((piece, rank, parts))
            pending_bytes += size
            if pending_bytes >= JOIN_BYTES or size >= JOIN_BYTES // 4:
                parse_pending()
    parse_pending()
    if seen != len(expected):
        raise ValueError(f"a batch of {len(expected)} positions gave {seen} payloads")
    return counts, later, consumed, infos


def _ndjson(payload: Payload) -> bytes:
    if not isinstance(payload.data, bytes):
        raise ValueError(f"part {payload.position.id!r} of a payload is not NDJSON bytes")
    return payload.data


def _add_problems(parsed: Parsed, payload: Payload, *, damage_line: int | None = None) -> int:
    """Add the payload's damage (at ``damage_line``, if known) and problems to
    ``parsed``'s failures; how many."""
    source = payload.position.id
    added: list[tuple[str, int | None, str | None, str]] = (
        [(source, damage_line, None, payload.damage)] if payload.damage else []
    )
    added += [(source, line, raw, reason) for line, raw, reason in payload.problems]
    parsed.failures.extend(added)
    return len(added)
