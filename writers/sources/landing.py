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
digest of the last bytes read; :mod:`writers.sources.reading`). A plain file that grew is read on from the
recorded size (a range read) once the bytes just before it still have the recorded
digest, its line numbers going on from the recorded lines; when they do not, or the file
is gzip (a member appended), shrank, or was recorded before fingerprints existed, it is
read again from the start. A file rewritten at the same size has another fingerprint and
is read again too. Event-level dedupe keeps each event once either way. An incomplete
last line of a file modified within the quiet period (``LAKEHOUSE_LANDING_QUIET``,
default 5 minutes) waits for the next run.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from pyarrow import fs as pafs

from writers.parse import BOM, Parsed, objects_only, parse_ndjson
from writers.sources import receipt
from writers.sources.base import Batch, LedgerView, Payload, Plan, Position
from writers.sources.limits import Limits
from writers.sources.listing import (
    BROKEN,
    NOT_REGULAR,
    OUTSIDE,
    SECOND_PATH,
    Selection,
    SourceFile,
    list_zone,
)
from writers.sources.reading import (
    QUIET,
    TAIL,
    Fetched,
    Resume,
    fetch,
    fingerprint,
    parse_fingerprint,
    quiet_from_env,
)

log = logging.getLogger(__name__)

__all__ = [
    "QUIET",
    "TAIL",
    "LandingFiles",
    "SourceFile",
    "discover",
    "fetch",
    "groups",
    "read_source",
]

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
    go unmodified before an incomplete last line is read (and rejected) rather than waits. With ``settle``, a file modified less than that long ago (or that far in
    the future) is left for a later plan: it may still be being written."""

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
        settle: timedelta | None = None,
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
        self.settle = settle
        self.list_pages = 0  # LIST requests of the last plan (S3)
        self.changes: dict[str, Resume | str] = {}  # of the last plan (see plan)
        self.before: dict[str, str] = {}

    def plan(self, ledger: LedgerView) -> Plan:
        look_back = self.look_back

        def start_after(root: str) -> str | None:
            if look_back is None:
                return None
            after = start_key(ledger.last_with_prefix(root), root, look_back)
            prefetch = getattr(ledger, "prefetch", None)
            if after is not None and prefetch is not None:
                prefetch(root, root + after)  # the ledger files it will be asked, while listing
            return after

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
        if self.settle:  # perhaps still being written: a later plan takes it
            pending = [f for f in pending if abs(now - f.mtime) >= self.settle]
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
