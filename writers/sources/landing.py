"""Landing files as a source: newline-delimited JSON files (gzipped or not, told by
content) under local folders or S3 prefixes, one position per file (its URI and size).

Files are listed (:mod:`writers.sources.listing`), the ledger is asked about the listed
ones only, and the rest are grouped into few batches (a re-run re-forms the same groups
from the same pending files). A zone whose keys start with ``YYYY/MM/DD/HH/`` (the
Firehose layout) is listed from the hour of its last committed key minus a look-back
window. Each file is fetched, checked against the limits (:mod:`writers.sources.limits`)
and gunzipped ahead in a background thread, which also counts its lines for the parser.
A file whose size differs from the one the ledger recorded is read again (event-level
dedupe keeps each event once); an incomplete last line of a recently modified file waits.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from pyarrow import fs as pafs

from lakehouse.errors import ConfigError, StorageError
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
line waits for the next run."""

_HOUR_KEY = re.compile(r"^(\d{4})/(\d{2})/(\d{2})/(\d{2})/")
_NOTEWORTHY = (OUTSIDE, BROKEN, SECOND_PATH, NOT_REGULAR)


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


def fetch(
    filesystem: pafs.FileSystem,
    source: SourceFile,
    limits: Limits | None = None,
    *,
    now: datetime | None = None,
    quiet: timedelta = QUIET,
) -> Fetched:
    """The file's content within ``limits``: gunzipped when gzip (by magic bytes), its
    over-long lines blanked and reported, the whole file rejected when it cannot be read
    as NDJSON. Transient storage errors are retried with backoff, then the file is
    deferred. An incomplete last line of a plain file modified within ``quiet`` waits."""
    limits = limits or Limits.from_env()
    if source.size > limits.max_file:
        return _rejected(f"file of {source.size} bytes is over LAKEHOUSE_MAX_FILE_BYTES")
    try:
        raw = retry_storage(lambda: _read(filesystem, source))
    except FileRejected as exc:
        return _rejected(str(exc))
    except StorageError as exc:
        return Fetched(b"", deferred=str(exc))
    try:
        data, damage = decode(raw, limits)
    except FileRejected as exc:
        return _rejected(str(exc))
    plain = raw[:2] != GZIP_MAGIC
    del raw
    why = not_ndjson(data)
    if why:
        return _rejected(why)
    consumed = None
    now = now or datetime.now(UTC)
    if plain and data and not data.endswith(b"\n") and now - source.mtime < quiet:
        kept = complete_lines(data)
        if not kept:
            return Fetched(b"", waiting=True)
        consumed, data = len(kept), kept
    data, long = over_long_lines(data, limits.max_line)
    return Fetched(data, damage, tuple(long), consumed=consumed)


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
    before the hour of the last committed key a time-ordered zone is listed again."""

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
        quiet: timedelta = QUIET,
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
        self.quiet = quiet
        self.list_pages = 0  # LIST requests of the last plan (S3)

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
        known = ledger.committed_among(f.uri for f in files)
        pending = [f for f in files if known.get(f.uri) != f.size]
        changed = [f.uri for f in pending if f.uri in known]
        notes = list(listing.notes)
        if changed:
            notes.append(
                f"{len(changed)} file(s) changed since they were ingested (grown, rewritten "
                "or truncated), read again; events already ingested are kept once: "
                + ", ".join(changed[:5])
                + (" ..." if len(changed) > 5 else "")
            )
        for why in _NOTEWORTHY:
            if listing.ignored[why]:
                notes.append(f"{listing.ignored[why]} path(s) left out: {why}")
        if not files and listing.ignored:
            found = sum(listing.ignored.values())
            reasons = "; ".join(f"{n} {why}" for why, n in listing.ignored.most_common())
            notes.append(f"found {found} file(s) but took none: {reasons}")
        now = datetime.now(UTC)
        return Plan(
            self._batches(listing.filesystem, pending, now),
            pending_positions=len(pending),
            pending_bytes=sum(f.size for f in pending),
            skipped=tuple(f.uri for f in files if known.get(f.uri) == f.size),
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
                    tuple(Position(f.uri, f.size) for f in group),
                    self._payloads(filesystem, group, pool, now),
                )
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _fetch(self, filesystem: pafs.FileSystem, source: SourceFile, now: datetime) -> Payload:
        """Fetch one file and count its newlines and whether every line starts with
        ``{`` (:func:`writers.parse.objects_only`), here in the background thread (numpy
        lets go of the GIL while it scans; ``bytes.count`` would not)."""
        got = fetch(filesystem, source, self.limits, now=now, quiet=self.quiet)
        received, estimated = receipt.receipt_time(source.key, source.mtime, self.receipt_time, now)
        data = got.data
        newlines = int(np.count_nonzero(np.frombuffer(data, np.uint8) == 10))
        body = memoryview(data)[len(BOM) :] if data.startswith(BOM) else data
        return Payload(
            Position(source.uri, source.size),
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
