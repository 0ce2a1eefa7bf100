"""A Kinesis data stream as a source (``kinesis://STREAM``), exactly once per record.

**Positions.** A batch holds one position per shard it read from,
``kinesis://<stream>/<shard>/<sequence>``: the last sequence number of the shard's
records in the batch (for a shard read to its end after a split or merge, its ending
sequence number, so the ledger says the shard is finished). The ingest driver commits the
events, the rejects and these positions under one batch key; a restart asks the ledger
for the stream's positions (:meth:`LedgerView.committed_with_prefix`) and reads each shard
AFTER the highest one. A never-read stream starts at ``--from``: the trim horizon, or a
time (``latest`` is the time of the first run), which is committed as a position
``kinesis://<stream>/@start/<time>`` before anything else so a restart starts there too.

**Shards.** All shards are listed, open and closed; a child shard is read only once each
parent is finished and that is committed (a batch ends where a shard ends). Throttling
and expired iterators are waited out (:mod:`writers.sources.kinesis_client`), never skipped.

**Records.** Each record is a part of its shard's payload, named by its sequence number
and received at its arrival time (:mod:`writers.sources.kinesis_records`): a bad line or
record is a reject naming ``kinesis://stream/shard/sequence`` and never holds up the shard.

**Batches** end at the writer's thresholds (records, bytes, age of the oldest record).
Without ``follow`` every shard is read up to the tip found on reaching it and the plan
ends; with ``follow`` the shards are polled (``poll`` seconds apart at the tip) until the
``stop`` event is set, and the batch in hand is committed before stopping.

**Re-runs.** A run killed between the events commit and the ledger commit re-reads from
the last committed positions. The same records form the same first batch (same key:
nothing is written twice) unless the batch had ended at the tip or by age and more
records arrived since; then the events already committed are dropped by the writer's
event-level dedupe (same ``event_id`` in the same hour) and their rejects by the rejects'
dedupe (same record, same line).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from lakehouse.errors import UsageError
from writers.sources.base import Batch, LedgerView, Payload, Plan, Position
from writers.sources.kinesis_client import IteratorExpired, Read, Shard, StreamClient
from writers.sources.kinesis_records import record_part

log = logging.getLogger(__name__)

SCHEME = "kinesis://"
START_MARK = "@start"
MAX_LIMIT = 10_000  # GetRecords' largest page


def is_stream_uri(text: str) -> bool:
    return text.lower().startswith(SCHEME)


def stream_name(uri: str) -> str:
    """The stream of ``kinesis://STREAM``."""
    name = uri[len(SCHEME) :] if is_stream_uri(uri) else ""
    if not name or "/" in name.rstrip("/"):
        raise UsageError(f"{uri}: expected kinesis://STREAM (a stream name, no path)")
    return name.rstrip("/")


@dataclass(frozen=True)
class StartFrom:
    """Where a never-read stream starts: its trim horizon, or a time."""

    kind: Literal["trim-horizon", "latest", "at"] = "trim-horizon"
    at: datetime | None = None

    @classmethod
    def parse(cls, text: str) -> StartFrom:
        word = text.strip().lower()
        if word in {"trim-horizon", "trim_horizon", "earliest"}:
            return cls("trim-horizon")
        if word == "latest":
            return cls("latest")
        try:
            at = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        except ValueError:
            raise UsageError(
                f"--from {text!r}: expected trim-horizon, latest or an ISO-8601 time"
            ) from None
        return cls("at", at if at.tzinfo else at.replace(tzinfo=UTC))


@dataclass(frozen=True)
class Committed:
    """What the ledger says of a stream: the last committed sequence of each shard, and
    where a never-read shard starts (None: the trim horizon)."""

    after: dict[str, int]
    start_at: datetime | None = None


def read_committed(ledger: LedgerView, stream: str) -> Committed:
    prefix = f"{SCHEME}{stream}/"
    after: dict[str, int] = {}
    start_at: datetime | None = None
    for position, _ in ledger.committed_with_prefix(prefix):
        shard, _, sequence = position[len(prefix) :].rpartition("/")
        if shard == START_MARK:
            start_at = datetime.fromisoformat(sequence)
        elif shard and sequence.isdigit():
            after[shard] = max(after.get(shard, -1), int(sequence))
    return Committed(after, start_at)


def position_of(stream: str, shard: str, sequence: int, size: int = 0) -> Position:
    return Position(f"{SCHEME}{stream}/{shard}/{sequence}", size)


@dataclass
class _Reader:
    """A shard being read: the last sequence read, its iterator, and whether it is at
    the tip (nothing more for now) or ended (closed, read to its end)."""

    shard: Shard
    last: int | None
    iterator: str | None = None
    at_tip: bool = False
    ended: bool = False
    records: list[Payload] = field(default_factory=list)  # read, not yet in a batch
    nbytes: int = 0


@dataclass(frozen=True)
class ShardState:
    """A shard as seen by the last read: its last read sequence and how far behind the
    tip that was (milliseconds, as Kinesis reports it)."""

    shard: str
    last: int | None
    millis_behind: int | None
    ended: bool


class KinesisStream:
    """The records of one stream (see the module's text). ``client`` makes the calls;
    ``max_records``, ``max_bytes`` and ``max_age`` (seconds) end a batch; ``follow`` keeps
    polling until ``stop`` is set, ``poll`` seconds apart when every shard is at its tip;
    ``tick`` is called once per round of reads (the CLI renews its lease there)."""

    def __init__(
        self,
        stream: str,
        client: StreamClient,
        *,
        start: StartFrom | None = None,
        follow: bool = False,
        stop: threading.Event | None = None,
        max_records: int = 1_000_000,
        max_bytes: int = 256 * 1024 * 1024,
        max_age: float = 60.0,
        poll: float = 1.0,
        tick: Callable[[], None] | None = None,
    ) -> None:
        self.stream = stream
        self.client = client
        self.start = start or StartFrom()
        self.follow = follow
        self.stop = stop or threading.Event()
        self.max_records = max_records
        self.max_bytes = max_bytes
        self.max_age = max_age
        self.poll = poll
        self.tick = tick
        self.states: dict[str, ShardState] = {}

    def plan(self, ledger: LedgerView) -> Plan:
        # checked: every position is new by construction (a shard is read after its
        # highest committed sequence, sequences only grow, a finished shard is not read,
        # the start mark only when the stream has no position), so the driver need not
        # ask the ledger again before each batch
        return Plan(self._batches(read_committed(ledger, self.stream)), checked=True)

    # -- the read loop ----------------------------------------------------------------

    def _batches(self, committed: Committed) -> Iterator[Batch]:
        done = dict(committed.after)  # shard -> last committed sequence
        start_at = committed.start_at
        if not done and start_at is None and self.start.kind != "trim-horizon":
            start_at = self.start.at or datetime.now(UTC)
            mark = Position(f"{SCHEME}{self.stream}/{START_MARK}/{start_at.isoformat()}", 0)
            yield Batch((mark,), iter([Payload(mark, b"", start_at)]))
        shards = {s.id: s for s in self.client.shards()}
        readers: dict[str, _Reader] = {}
        opened: float | None = None  # when the batch in hand got its first record
        while True:
            if self.tick is not None:
                self.tick()
            ready = [s for s in sorted(shards) if _readable(shards[s], shards, done)]
            for sid in ready:
                if sid not in readers:
                    readers[sid] = _Reader(shards[sid], done.get(sid))
            active = [readers[s] for s in ready if not readers[s].ended]
            room = self.max_records - sum(len(r.records) for r in readers.values())
            reading = [r for r in active if not r.at_tip]
            for reader in reading:
                if room <= 0 or self.stop.is_set():
                    break
                got = self._read(reader, min(MAX_LIMIT, max(1, room)), start_at)
                room -= got
                if got and opened is None:
                    opened = time.monotonic()
            pending = sum(len(r.records) for r in readers.values())
            nbytes = sum(r.nbytes for r in readers.values())
            ended_now = any(r.ended for r in readers.values())
            all_tip = all(r.at_tip or r.ended for r in active)
            aged = opened is not None and time.monotonic() - opened >= self.max_age
            full = pending >= self.max_records or nbytes >= self.max_bytes
            stopping = self.stop.is_set()
            cut = full or ended_now or aged or stopping or (all_tip and not self.follow)
            if cut and (pending or ended_now):
                batch = self._batch(readers)
                yield batch
                # the driver committed it: the shards stand where the batch ended
                prefix = len(SCHEME) + len(self.stream) + 1
                for p in batch.positions:
                    shard, _, sequence = p.id[prefix:].rpartition("/")
                    done[shard] = int(sequence)
                for sid in [s for s, r in readers.items() if r.ended]:
                    del readers[sid]
                opened = None
                if ended_now:
                    shards = {s.id: s for s in self.client.shards()}  # children now readable
                continue
            if stopping:
                return
            if all_tip:
                if not self.follow:
                    return  # every readable shard is at its tip, nothing is in hand
                self.stop.wait(self.poll)
                shards = {s.id: s for s in self.client.shards()}
                for reader in readers.values():
                    reader.at_tip = False
                    if reader.shard.id in shards:
                        reader.shard = shards[reader.shard.id]

    def _read(self, reader: _Reader, limit: int, start_at: datetime | None) -> int:
        """One GetRecords on the reader's shard: its records join the batch in hand."""
        shard = reader.shard
        for _ in range(3):
            if reader.iterator is None:
                reader.iterator = self.client.iterator(
                    shard.id, after=reader.last, at=start_at if reader.last is None else None
                )
            try:
                read = self.client.read(reader.iterator, limit)
                break
            except IteratorExpired:
                log.info("iterator of %s expired; asking again after %s", shard.id, reader.last)
                reader.iterator = None
        else:
            read = Read([], reader.iterator, None)
        reader.iterator = read.next_iterator
        for record in read.records:
            part = record_part(self.stream, shard.id, record)
            reader.records.append(part)
            reader.nbytes += part.position.size
            reader.last = int(record["SequenceNumber"])
        last = reader.last if reader.last is not None else -1
        if shard.closed and (
            read.next_iterator is None
            or last >= (shard.ending_sequence or 0)
            or (not read.records and read.millis_behind == 0)
        ):
            reader.ended = True
        elif not read.records:  # (MillisBehindLatest 0 with records: more may follow)
            reader.at_tip = True
        self.states[shard.id] = ShardState(shard.id, reader.last, read.millis_behind, reader.ended)
        return len(read.records)

    def _batch(self, readers: dict[str, _Reader]) -> Batch:
        """The records in hand as one batch: a position per shard (sorted by shard)."""
        positions: list[Position] = []
        payloads: list[Payload] = []
        for sid in sorted(readers):
            reader = readers[sid]
            if not reader.records and not reader.ended:
                continue
            sequence = reader.last if reader.last is not None else -1
            if reader.ended:
                sequence = max(sequence, reader.shard.ending_sequence or 0)
            position = position_of(self.stream, sid, sequence, reader.nbytes)
            received = reader.records[-1].received_at if reader.records else datetime.now(UTC)
            positions.append(position)
            payloads.append(Payload(position, b"", received, parts=tuple(reader.records)))
            reader.records = []
            reader.nbytes = 0
        return Batch(tuple(positions), iter(payloads))


def _finished(shard: Shard, done: dict[str, int]) -> bool:
    """A closed shard whose end is committed."""
    return shard.ending_sequence is not None and done.get(shard.id, -1) >= shard.ending_sequence


def _readable(shard: Shard, shards: dict[str, Shard], done: dict[str, int]) -> bool:
    """Not finished, and every parent finished (a parent no longer listed has expired)."""
    return not _finished(shard, done) and all(
        p not in shards or _finished(shards[p], done) for p in shard.parents
    )
