"""Landing files as a source: newline-delimited JSON files (gzipped or not, told by
content) under local folders or S3 prefixes, one position per file (its URI and size).

Files are listed (:mod:`writers.sources.listing`), the ledger is asked about the listed
ones only, and the rest are grouped into few batches (a re-run re-forms the same groups
from the same pending files). A zone whose keys start with ``YYYY/MM/DD/HH/`` (the
Firehose layout) is listed from the hour of its last committed key minus a look-back
window. Each file is fetched, checked against the limits (:mod:`writers.sources.limits`)
and gunzipped ahead in a background thread, which also counts its lines for the parser.

Files that change: the ledger records, with each file, the bytes read, the newlines in
them and a fingerprint (the S3 ETag or the local inode and modification time, and a
digest of the last :data:`TAIL` bytes read). A plain file that grew is read on from the
recorded size (a range read) once the bytes just before it still have the recorded
digest, its line numbers going on from the recorded lines; when they do not, or the file
is gzip (a member appended), shrank, or was recorded before fingerprints existed, it is
read again from the start. A file rewritten at the same size has another fingerprint and
is read again too. Event-level dedupe keeps each event once either way. An incomplete
last line of a file modified within the quiet period (``LAKEHOUSE_LANDING_QUIET``,
default 5 minutes) waits for the next run.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from pyarrow import fs as pafs

from lakehouse.durations import parse_duration
from lakehouse.errors import ConfigError, StorageError, UsageError
from lakehouse.retry import retry_storage
from lakehouse.storage import storage_error
from writers.parse import BOM, Parsed, objects_only, parse_ndjson
from writers.sources import receipt
from writers.sources.base import Batch, Payload, Plan, Position
from writers.sources.limits import (
    GZIP_MAGIC,
    FileRejected,
    Limits,
    complete_lines,
    decode,
    not_ndjson,
    over_long_lines,
)
from writers.sources.listing import (
    BROKEN,
    NOT_REGULAR,
    OUTSIDE,
    SECOND_PATH,
    Selection,
    SourceFile,
    list_zone,
)

log = logging.getLogger(__name__)

__all__ = ["LandingFiles", "SourceFile", "discover", "fetch", "groups", "read_source"]

QUIET = timedelta(minutes=5)
"""A file modified less than this long ago is still being written: its incomplete last
line waits for the next run (``LAKEHOUSE_LANDING_QUIET`` sets another period)."""

QUIET_ENV = "LAKEHOUSE_LANDING_QUIET"

TAIL = 4096
"""Bytes before a file's recorded size whose digest must be unchanged for the file to be
read on from there (a file that grew by appending)."""


def quiet_from_env(env: dict[str, str] | None = None) -> timedelta:
    """The quiet period from ``LAKEHOUSE_LANDING_QUIET`` (``30s``, ``5m``...), else :data:`QUIET`."""
    raw = (os.environ if env is None else env).get(QUIET_ENV, "").strip()
    if not raw:
        return QUIET
    try:
        return parse_duration(raw)
    except UsageError as exc:
        raise ConfigError(f"{QUIET_ENV}: {exc}") from None


@dataclass(frozen=True)
class Resume:
    """Where a plain file that grew is read on from: its recorded size, the newlines
    before it and the digest of the :data:`TAIL` bytes before it."""

    offset: int
    lines: int
    tail: str


def digest(data: bytes | memoryview) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def fingerprint(stamp: str | None, tail: str | None) -> str | None:
    """The ledger's fingerprint of a file: its stamp, and the digest of the last bytes
    read when it can be read on from there (plain files)."""
    if stamp is None and tail is None:
        return None
    return (stamp or "") + (f";tail={tail}" if tail else "")


def parse_fingerprint(value: str | None) -> tuple[str | None, str | None]:
    """(stamp, tail digest) of a recorded fingerprint."""
    if not value:
        return None, None
    stamp, _, tail = value.partition(";tail=")
    return stamp or None, tail or None


_HOUR_KEY = re.compile(r"^(\d{4})/(\d{2})/(\d{2})/(\d{2})/")
_NOTEWORTHY = (OUTSIDE, BROKEN, SECOND_PATH, NOT_REGULAR)


def _some(items: list[str]) -> str:
    return ", ".join(items[:5]) + (" ..." if len(items) > 5 else "")


def discover(
    locations: Sequence[str], io: Any = None, *, selection: Selection | None = None
) -> tuple[pafs.FileSystem, list[SourceFile]]:
    """The landing files under the given files/directories or prefixes (recursive), in
    key order, no repeats. ``io`` (the table's FileIO) configures S3 access."""
    listing = list_zone(locations, io, selection=selection)
    return listing.filesystem, listing.files


@dataclass(frozen=True)
class Fetched:
    """One file read within the limits (see :func:`fetch`)."""

    data: bytes
    damage: str | None = None
    problems: tuple[tuple[int | None, str | None, str], ...] = ()
    deferred: str | None = None
    waiting: bool = False
    consumed: int | None = None
    start: int = 0
    lines_before: int = 0
    lines: int | None = None
    tail: str | None = None
    reread: str | None = None


def fetch(
    filesystem: pafs.FileSystem,
    source: SourceFile,
    limits: Limits | None = None,
    *,
    now: datetime | None = None,
    quiet: timedelta = QUIET,
    resume: Resume | None = None,
) -> Fetched:
    """The file's content within ``limits``: gunzipped when gzip (by magic bytes), its
    over-long lines blanked and reported, the whole file rejected when it cannot be read
    as NDJSON. Transient storage errors are retried with backoff, then the file is
    deferred. An incomplete last line of a plain file modified within ``quiet`` waits.
    With ``resume``, only the bytes after its offset are read, once the bytes before it
    are found unchanged; otherwise the whole file (``reread`` says why)."""
    limits = limits or Limits.from_env()
    if source.size > limits.max_file:
        return _rejected(f"file of {source.size} bytes is over LAKEHOUSE_MAX_FILE_BYTES")
    start = lines_before = base = 0
    reread = None
    try:
        raw = b""
        if resume is not None and 0 < resume.offset < source.size:
            lo = max(0, resume.offset - TAIL)
            raw = retry_storage(lambda: _read_range(filesystem, source, lo, source.size))
            if digest(memoryview(raw)[: resume.offset - lo]) == resume.tail:
                start, lines_before, base = resume.offset, resume.lines, lo
            else:
                reread = "its ingested bytes changed (rewritten): read again from the start"
                raw = b""
        if not start:
            raw = retry_storage(lambda: _read(filesystem, source))
    except FileRejected as exc:
        return _rejected(str(exc))
    except StorageError as exc:
        return Fetched(b"", deferred=str(exc))
    plain = bool(start) or raw[:2] != GZIP_MAGIC
    if start:
        data, damage = raw[start - base :], None
    else:
        if plain:
            raw = raw[: source.size]  # what was listed; bytes added since wait for the next run
        try:
            data, damage = decode(raw, limits)
        except FileRejected as exc:
            return _rejected(str(exc))
    why = not_ndjson(data)
    if why:
        return _rejected(why)
    consumed = None
    now = now or datetime.now(UTC)
    if plain and data and not data.endswith(b"\n") and now - source.mtime < quiet:
        kept = complete_lines(data)
        if not kept:
            return Fetched(b"", waiting=True, start=start, reread=reread)
        consumed, data = start + len(kept), kept
    lines = tail = None
    if plain:  # what the ledger needs to read on from here next time
        end = consumed if consumed is not None else start + len(data)
        lines = lines_before + data.count(b"\n")
        tail = digest(memoryview(raw)[max(0, end - TAIL) - base : end - base])
    del raw
    data, long = over_long_lines(data, limits.max_line)
    problems = tuple((line + lines_before, text, reason) for line, text, reason in long)
    return Fetched(
        data,
        damage,
        problems,
        consumed=consumed,
        start=start,
        lines_before=lines_before,
        lines=lines,
        tail=tail,
        reread=reread,
    )


def _rejected(reason: str) -> Fetched:
    return Fetched(b"", problems=((None, None, reason),))


def _read(filesystem: pafs.FileSystem, source: SourceFile) -> bytes:
    try:
        with filesystem.open_input_stream(source.path, compression=None) as stream:
            data: bytes = stream.read()
            return data
    except (PermissionError, IsADirectoryError) as exc:
        raise FileRejected(f"unreadable: {exc.strerror or exc}") from exc
    except FileNotFoundError as exc:  # gone since it was listed: nothing to ingest
        raise FileRejected(f"unreadable: vanished after it was listed ({exc})") from exc
    except OSError as exc:
        error = storage_error(exc, source.uri, "read")
        if isinstance(error, ConfigError):  # access denied to this object
            raise FileRejected(f"unreadable: {error}") from exc
        raise error from exc


def _read_range(filesystem: pafs.FileSystem, source: SourceFile, lo: int, hi: int) -> bytes:
    """Bytes ``lo`` to ``hi`` of the file (a range read: S3 asks for that range only)."""
    try:
        with filesystem.open_input_file(source.path) as f:
            data: bytes = f.read_at(hi - lo, lo)
            return data
    except (PermissionError, IsADirectoryError) as exc:
        raise FileRejected(f"unreadable: {exc.strerror or exc}") from exc
    except FileNotFoundError as exc:
        raise FileRejected(f"unreadable: vanished after it was listed ({exc})") from exc
    except OSError as exc:
        error = storage_error(exc, source.uri, "read")
        if isinstance(error, ConfigError):
            raise FileRejected(f"unreadable: {error}") from exc
        raise error from exc


def read_source(
    filesystem: pafs.FileSystem, source: SourceFile, fetched: Fetched | None = None
) -> Parsed:
    """Read and parse one file, its problems as failures (tests and tools)."""
    got = fetched or fetch(filesystem, source, now=datetime.now(UTC) + QUIET)
    parsed = parse_ndjson(got.data, source.uri)
    extra: list[tuple[str, int | None, str | None, str]] = (
        [(source.uri, None, None, got.damage)] if got.damage else []
    )
    extra += [(source.uri, line, raw, reason) for line, raw, reason in got.problems]
    parsed.failures.extend(extra)
    parsed.records += len(extra)
    return parsed


def groups(
    files: Sequence[SourceFile], *, max_files: int, max_bytes: int
) -> Iterator[list[SourceFile]]:
    """Consecutive files, bounded by count and (compressed) bytes per group."""
    group: list[SourceFile] = []
    size = 0
    for f in files:
        if group and (len(group) >= max_files or size + f.size > max_bytes):
            yield group
            group, size = [], 0
        group.append(f)
        size += f.size
    if group:
        yield group


def start_key(last: str | None, root: str, look_back: timedelta) -> str | None:
    """The key to list after, below ``root``: the hour of the last committed key (when
    keys below the root start with ``YYYY/MM/DD/HH/``) minus ``look_back``."""
    if last is None or not last.startswith(root):
        return None
    match = _HOUR_KEY.match(last[len(root) :])
    if not match:
        return None
    try:
        hour = datetime(*(int(g) for g in match.groups()), tzinfo=UTC)  # type: ignore[arg-type,misc]
    except ValueError:
        return None
    since = hour - look_back
    return since.strftime("%Y/%m/%d/%H")  # sorts just before that hour's keys


class LandingFiles:
    """The landing files under ``locations`` (files, folders or prefixes, searched
    recursively), in key order; consecutive pending files are committed together, up to
    ``max_files`` files and ``max_bytes`` (compressed) bytes per batch. Files are fetched
    and gunzipped ahead in background threads (``look_ahead`` files, within a batch).
    ``io`` (the table's FileIO) configures S3 access. ``receipt_time`` is a mode of
    :mod:`writers.sources.receipt`. ``look_back`` (None: list everything) is how far
    before the hour of the last committed key a time-ordered zone is listed again.
    ``quiet`` (None: ``LAKEHOUSE_LANDING_QUIET``, else 5 minutes) is how long a file must
    go unmodified before an incomplete last line is read (and rejected) rather than waits."""

    def __init__(
        self,
        locations: Sequence[str],
        *,
        io: Any = None,
        max_files: int = 2000,
        max_bytes: int = 64 * 1024 * 1024,
        look_ahead: int = 8,
        selection: Selection | None = None,
        receipt_time: str = "auto",
        look_back: timedelta | None = timedelta(hours=2),
        limits: Limits | None = None,
        quiet: timedelta | None = None,
    ) -> None:
        if receipt_time not in receipt.MODES:
            raise ValueError(f"receipt time {receipt_time!r} is not one of {receipt.MODES}")
        self.locations = tuple(locations)
        self.io = io
        self.max_files = max_files
        self.max_bytes = max_bytes
        self.look_ahead = look_ahead
        self.selection = selection or Selection()
        self.receipt_time = receipt_time
        self.look_back = look_back
        self.limits = limits or Limits.from_env()
        self.quiet = quiet_from_env() if quiet is None else quiet
        self.list_pages = 0  # LIST requests of the last plan (S3)
        self.changes: dict[str, Resume | str] = {}  # of the last plan (see plan)
        self.before: dict[str, str] = {}

    def plan(self, ledger: Any) -> Plan:
        look_back = self.look_back

        def start_after(root: str) -> str | None:
            if look_back is None:
                return None
            return start_key(ledger.last_with_prefix(root), root, look_back)

        listing = list_zone(
            self.locations, self.io, selection=self.selection, start_after=start_after
        )
        self.list_pages = listing.pages
        files = listing.files
        recorded = ledger.recorded_among(f.uri for f in files)
        pending: list[SourceFile] = []
        changes: dict[str, Resume | str] = {}  # by uri: where to read on, or why from the start
        before: dict[str, str] = {}  # by uri: the key of the batch that last recorded it
        for f in files:
            r = recorded.get(f.uri)
            if r is None:
                pending.append(f)
                continue
            stamp, tail = parse_fingerprint(r.fingerprint)
            if f.size == r.size:
                if stamp is None or f.stamp is None or stamp == f.stamp:
                    continue  # unchanged
                changes[f.uri] = "rewritten at the same size"
            elif f.size < r.size:
                changes[f.uri] = "truncated or rewritten shorter"
            elif tail is not None and r.lines is not None:
                changes[f.uri] = Resume(r.size, r.lines, tail)
            else:
                changes[f.uri] = (
                    "grew; what was read before cannot be checked (compressed, or "
                    "recorded before fingerprints), so it is read from the start"
                )
            before[f.uri] = r.batch_key or ""
            pending.append(f)
        notes = list(listing.notes)
        grown = [u for u, c in changes.items() if isinstance(c, Resume)]
        again = [f"{u} ({c})" for u, c in changes.items() if isinstance(c, str)]
        if grown:
            notes.append(
                f"{len(grown)} file(s) grew since they were ingested; only their new bytes "
                "are read: " + _some(grown)
            )
        if again:
            notes.append(
                f"{len(again)} file(s) changed since they were ingested, read again from "
                "the start; events already ingested are kept once: " + _some(again)
            )
        self.changes, self.before = changes, before
        for why in _NOTEWORTHY:
            if listing.ignored[why]:
                notes.append(f"{listing.ignored[why]} path(s) left out: {why}")
        if not files and listing.ignored:
            found = sum(listing.ignored.values())
            reasons = "; ".join(f"{n} {why}" for why, n in listing.ignored.most_common())
            notes.append(f"found {found} file(s) but took none: {reasons}")
        now = datetime.now(UTC)
        pending_set = set(pending)
        return Plan(
            self._batches(listing.filesystem, pending, now),
            pending_positions=len(pending),
            pending_bytes=sum(f.size for f in pending),
            skipped=tuple(f.uri for f in files if f.uri in recorded and f not in pending_set),
            notes=tuple(notes),
            checked=True,
        )

    def _batches(
        self, filesystem: pafs.FileSystem, pending: list[SourceFile], now: datetime
    ) -> Iterator[Batch]:
        pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="lakehouse-fetch")
        try:
            for group in groups(pending, max_files=self.max_files, max_bytes=self.max_bytes):
                yield Batch(
                    tuple(self._position(f) for f in group),
                    self._payloads(filesystem, group, pool, now),
                )
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _position(self, f: SourceFile) -> Position:
        """The file as a position. A file read before carries in its stamp the key of the
        batch that last recorded it, so a read of it after a change is always another
        batch (another key), even when its content is back to an earlier version."""
        if f.uri not in self.before:
            return Position(f.uri, f.size, f.stamp)
        return Position(f.uri, f.size, f"{f.stamp or ''};after={self.before[f.uri]}")

    def _fetch(self, filesystem: pafs.FileSystem, source: SourceFile, now: datetime) -> Payload:
        """Fetch one file and count its newlines and whether every line starts with
        ``{`` (:func:`writers.parse.objects_only`), here in the background thread (numpy
        lets go of the GIL while it scans; ``bytes.count`` would not)."""
        change = self.changes.get(source.uri)
        resume = change if isinstance(change, Resume) else None
        got = fetch(filesystem, source, self.limits, now=now, quiet=self.quiet, resume=resume)
        received, estimated = receipt.receipt_time(source.key, source.mtime, self.receipt_time, now)
        data = got.data
        newlines = int(np.count_nonzero(np.frombuffer(data, np.uint8) == 10))
        body = memoryview(data)[len(BOM) :] if data.startswith(BOM) else data
        reread = got.reread or (change if isinstance(change, str) else None)
        return Payload(
            self._position(source),
            data,
            received,
            damage=got.damage,
            newlines=newlines,
            objects=objects_only(body),
            problems=got.problems,
            deferred=got.deferred
            if got.deferred is not None
            else (
                "its last line is incomplete and the file is still being written"
                if got.waiting
                else None
            ),
            waiting=got.waiting,
            consumed=got.consumed,
            receipt_estimated=estimated,
            start=got.start,
            lines_before=got.lines_before,
            fingerprint=fingerprint(source.stamp, got.tail),
            lines=got.lines,
            reread=reread,
        )

    def _payloads(
        self,
        filesystem: pafs.FileSystem,
        group: list[SourceFile],
        pool: ThreadPoolExecutor,
        now: datetime,
    ) -> Iterator[Payload]:
        """The group's files in order, the next ones fetched in the background."""
        futures: dict[int, Future[Payload]] = {}
        for i in range(len(group)):
            for j in range(i, min(i + self.look_ahead, len(group))):
                if j not in futures:
                    futures[j] = pool.submit(self._fetch, filesystem, group[j], now)
            yield futures.pop(i).result()
