"""Reading one landing file: the whole file, or only the bytes a file that grew has added.

The file is read within the limits (:mod:`writers.sources.limits`). A plain file that grew
since it was ingested is read on from its recorded size with a range read, once the
:data:`TAIL` bytes before that size still have the digest the ledger recorded (otherwise
it is read again from the start). An incomplete last line of a plain file modified within
the quiet period waits. What the ledger needs to read on next time (newlines read, the
digest of the last bytes read) comes back with the content.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pyarrow import fs as pafs

from lakehouse.durations import parse_duration
from lakehouse.errors import ConfigError, StorageError, UsageError
from lakehouse.retry import retry_storage
from lakehouse.storage import storage_error
from writers.sources.limits import (
    GZIP_MAGIC,
    FileRejected,
    Limits,
    complete_lines,
    decode,
    not_ndjson,
    over_long_lines,
)
from writers.sources.listing import SourceFile

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
    # a damaged file (truncated gzip) is judged line by line: what survived is a part
    why = not_ndjson(data) if damage is None else None
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
