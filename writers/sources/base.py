"""What every source gives the ingest driver: batches of payloads, each at a position.

A *position* names a piece of input once and for all — a landing file (its URI and
size), a stream shard's sequence number, a queue message id — so that the ledger
(:mod:`writers.ledger`) can record it as committed and a re-run can leave it out. A
*batch* is the positions that are committed together (one events commit, one rejects
commit, one ledger commit); its payloads, one per position and in the same order, are
produced lazily so that a source may fetch ahead while the driver parses.

A source does no bookkeeping of its own: it asks the ledger about the positions it
considers (:meth:`Ledger.committed_among` for listed ids, :meth:`Ledger.committed_with_prefix`
or :meth:`Ledger.last_with_prefix` to resume a stream or a time-ordered listing) and yields
the rest; the same pending positions must come out in the same batches on a re-run (the
batch's idempotency key is made from its positions).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import pyarrow as pa


@dataclass(frozen=True)
class Position:
    """A piece of input, named stably: ``id`` is what the ledger records (a file URI, or
    ``<stream>/<shard>/<sequence number>``), ``size`` its bytes as stored (compressed),
    ``stamp`` (optional) what identifies this version of it (an S3 ETag, a local inode and
    modification time): the same id and size with another stamp is changed content."""

    id: str
    size: int = 0
    stamp: str | None = None


@dataclass(frozen=True)
class Payload:
    """What a position holds: NDJSON bytes (uncompressed) or an Arrow table, and when it
    was received (the server time of its rows).

    ``damage`` is a problem found while reading it (a truncated gzip stream, say): kept as
    one extra rejected record of the position; ``problems`` are more such records, each
    ``(line or None, raw text or None, reason)`` (an over-long line, a file that is not
    NDJSON). ``deferred`` says why the position could not be read now (a storage outage):
    the driver leaves it uncommitted for the next run (``waiting``: not an outage, the
    input is not complete yet). ``consumed`` is the part of the position's size that was
    read (a file whose incomplete last line waits): the ledger records that size, so the
    position is read again once it changes. ``receipt_estimated`` marks a
    receipt time taken from storage metadata (a key's time, a modification time) rather
    than a server clock: a record's ``client_ts`` after it is then no sign of clock skew.
    ``start`` is where ``data`` begins in the position (a file that grew is read on from
    its recorded size) and ``lines_before`` the lines before it, so line numbers go on;
    ``fingerprint`` and ``lines`` are what the ledger records with the position (its
    version and the newlines read up to ``consumed``); ``reread`` says why an ingested
    position is read again from its start (rewritten, truncated). ``newlines`` and
    ``objects`` are optional
    hints on NDJSON bytes (newline count, whether every line starts with ``{``) that a
    source may compute in its fetch threads so the driver does not scan the bytes again.

    ``parts`` splits a position into pieces that each have their own name, receipt time
    and damage (a stream shard's records between two committed sequence numbers): when
    given, ``data`` is ignored and each part is parsed as if it were a payload of its own
    (rejects name the part), while the ledger records only the position.
    """

    position: Position
    data: bytes | pa.Table
    received_at: datetime
    damage: str | None = None
    newlines: int | None = None
    objects: bool | None = None
    problems: tuple[tuple[int | None, str | None, str], ...] = ()
    deferred: str | None = None
    waiting: bool = False
    consumed: int | None = None
    receipt_estimated: bool = False
    parts: tuple[Payload, ...] | None = None
    start: int = 0
    lines_before: int = 0
    fingerprint: str | None = None
    lines: int | None = None
    reread: str | None = None


@dataclass(frozen=True)
class Batch:
    """Positions committed together, and their payloads (one each, same order, lazy)."""

    positions: tuple[Position, ...]
    payloads: Iterable[Payload]

    @property
    def size(self) -> int:
        return sum(p.size for p in self.positions)


@dataclass
class Plan:
    """A source's answer to "what is left?": its batches (lazy) and, when the source can
    tell up front (a listing), how much is pending and which positions it left out."""

    batches: Iterator[Batch]
    pending_positions: int | None = None
    pending_bytes: int | None = None
    skipped: tuple[str, ...] = field(default=(), repr=False)
    notes: tuple[str, ...] = ()
    """What the user should know about the plan (files found but not taken, and why)."""
    checked: bool = False
    """The source asked the ledger about every position of its batches while planning:
    the driver does not ask again before each batch (a batch committed meanwhile by
    another run is still kept once by its key and by event-level dedupe)."""


@dataclass(frozen=True)
class Recorded:
    """A position as last recorded: its size, fingerprint and newlines (None when the
    row predates those columns), and the key of the batch that recorded it."""

    size: int
    fingerprint: str | None = None
    lines: int | None = None
    batch_key: str | None = None


class LedgerView(Protocol):
    """What a source may ask the ledger (:class:`writers.ledger.Ledger` implements it)."""

    def committed_among(self, ids: Iterable[str]) -> dict[str, int]:
        """Of the given position ids, those committed, each with its committed size."""
        ...

    def recorded_among(self, ids: Iterable[str]) -> dict[str, Recorded]:
        """Like :meth:`committed_among`, with each position's fingerprint and lines."""
        ...

    def committed_with_prefix(self, prefix: str) -> list[tuple[str, int]]:
        """(id, committed size) of every committed position whose id starts with
        ``prefix``, sorted by id."""
        ...

    def last_with_prefix(self, prefix: str) -> str | None:
        """The greatest committed id that starts with ``prefix``."""
        ...


class Source(Protocol):
    """Anything that can plan batches, asking the ledger what is committed."""

    def plan(self, ledger: LedgerView) -> Plan:
        """The batches still to ingest. The source asks ``ledger`` only about the
        positions it considers and leaves the committed ones out (the driver skips a batch
        whose positions are all committed, and refuses one that mixes committed and new)."""
        ...
