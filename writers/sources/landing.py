"""Landing files as a source: newline-delimited JSON files (gzipped or not) under local
folders or S3 prefixes, one position per file (its URI and size).

Files are listed in key order, those the ledger holds are left out, and the rest are
grouped into few batches (a re-run re-forms the same groups from the same pending
files). Each file is fetched and gunzipped ahead in a background thread, which also counts
its lines for the parser.
"""

from __future__ import annotations

import logging
import types
import zlib
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from pyarrow import fs as pafs

from lakehouse.errors import ConfigError, UsageError
from lakehouse.retry import retry_storage
from lakehouse.storage import filesystem_for, storage_error
from writers.parse import BOM, Parsed, objects_only, parse_ndjson
from writers.sources.base import Batch, Payload, Plan, Position

if TYPE_CHECKING:
    from writers.ledger import Ledger

log = logging.getLogger(__name__)

SUFFIXES = (".ndjson", ".jsonl", ".json")
GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class SourceFile:
    uri: str
    path: str
    size: int
    mtime: datetime

    @property
    def position(self) -> Position:
        return Position(self.uri, self.size)


def _is_data_file(path: str, root: str) -> bool:
    """A data file by suffix; files and folders below ``root`` whose names start with
    ``.`` or ``_`` are skipped (in-progress and marker files, ``.lakehouse`` itself)."""
    relative = path[len(root) :] if path.startswith(root) else path.rsplit("/", 1)[-1]
    if any(part.startswith((".", "_")) for part in relative.split("/") if part):
        return False
    name = path.rsplit("/", 1)[-1]
    base = name[:-3] if name.endswith(".gz") else name
    return base.endswith(SUFFIXES)


def discover(locations: Sequence[str], io: Any = None) -> tuple[pafs.FileSystem, list[SourceFile]]:
    """Files under the given files/directories or prefixes (recursive), in key order, no
    repeats. ``io`` (the table's FileIO) configures S3 access."""
    found: dict[str, SourceFile] = {}
    filesystem: pafs.FileSystem | None = None
    for location in locations:
        fs_, path, prefix = filesystem_for(location, io)
        if filesystem is not None and type(fs_) is not type(filesystem):
            raise UsageError("ingest one kind of location at a time (local paths or s3://)")
        filesystem = filesystem or fs_
        try:
            info = fs_.get_file_info(path)
        except OSError as exc:
            raise storage_error(exc, location, "read") from exc
        if info.type == pafs.FileType.NotFound:
            bucket = path.split("/", 1)[0]
            if prefix == "s3://" and fs_.get_file_info(bucket).type == pafs.FileType.NotFound:
                raise ConfigError(f"cannot read {location}: bucket {bucket!r} does not exist")
            raise UsageError(f"no such file, folder or prefix: {location}")
        try:
            infos = (
                fs_.get_file_info(pafs.FileSelector(path, recursive=True))
                if info.type == pafs.FileType.Directory
                else [info]
            )
        except OSError as exc:
            raise storage_error(exc, location, "list") from exc
        for item in infos:
            root = path if info.type == pafs.FileType.Directory else ""
            if item.type != pafs.FileType.File or not _is_data_file(item.path, root):
                continue
            uri = prefix + (
                item.path if item.path.startswith("/") or prefix != "file://" else "/" + item.path
            )
            mtime = item.mtime if item.mtime is not None else datetime.now(UTC)
            if mtime.tzinfo is None:
                mtime = mtime.replace(tzinfo=UTC)
            found[uri] = SourceFile(uri, item.path, int(item.size or 0), mtime)
    if filesystem is None:
        raise UsageError("no paths given to ingest")
    return filesystem, [found[k] for k in sorted(found)]


_inflate: types.ModuleType
try:  # Intel ISA-L inflates about twice as fast as zlib, with the same API
    from isal import isal_zlib as _inflate
except ImportError:  # pragma: no cover - isal is a dependency, zlib the fallback
    _inflate = zlib
_INFLATE_ERRORS: tuple[type[BaseException], ...] = (zlib.error, _inflate.error)


def fetch(filesystem: pafs.FileSystem, source: SourceFile) -> tuple[bytes, str | None]:
    """The file's bytes, gunzipped when gzip (by magic bytes), and any damage found.
    Transient storage errors are retried with backoff."""
    return retry_storage(lambda: _fetch_once(filesystem, source))


def _fetch_once(filesystem: pafs.FileSystem, source: SourceFile) -> tuple[bytes, str | None]:
    try:
        with filesystem.open_input_stream(source.path, compression=None) as stream:
            data = stream.read()
    except OSError as exc:
        raise storage_error(exc, source.uri, "read") from exc
    if data[:2] == GZIP_MAGIC:
        return _gunzip(data)
    return data, None


def _fetch_counting(
    filesystem: pafs.FileSystem, source: SourceFile
) -> tuple[bytes, str | None, int, bool]:
    """:func:`fetch`, plus the number of newlines and whether every line starts with
    ``{`` (:func:`writers.parse.objects_only`), found here in the background thread
    (numpy lets go of the GIL while it scans; ``bytes.count`` would not)."""
    data, damage = fetch(filesystem, source)
    newlines = int(np.count_nonzero(np.frombuffer(data, np.uint8) == 10))
    body = memoryview(data)[len(BOM) :] if data.startswith(BOM) else data
    return data, damage, newlines, objects_only(body)


def read_source(
    filesystem: pafs.FileSystem, source: SourceFile, fetched: tuple[bytes, str | None] | None = None
) -> Parsed:
    """Read and parse one file. A truncated or corrupt gzip stream keeps the complete
    lines before the damage and rejects the rest."""
    data, damage = fetched if fetched is not None else fetch(filesystem, source)
    parsed = parse_ndjson(data, source.uri)
    if damage:
        parsed.failures.append((source.uri, None, None, damage))
        parsed.records += 1
    return parsed


def _gunzip(data: bytes) -> tuple[bytes, str | None]:
    out: list[bytes] = []
    rest = data
    while rest:
        d = _inflate.decompressobj(wbits=31)
        try:
            out.append(d.decompress(rest))
        except _INFLATE_ERRORS as exc:
            return _complete_lines(
                b"".join(out)
            ), f"corrupt gzip data: {exc}; lines after the damage are lost"
        if not d.eof:
            return _complete_lines(
                b"".join(out)
            ), "truncated gzip file; its last partial line was not read"
        rest = d.unused_data
        if rest and rest[:2] != GZIP_MAGIC:
            break  # trailing garbage after the last member
    return b"".join(out), None


def _complete_lines(data: bytes) -> bytes:
    cut = data.rfind(b"\n")
    return data[: cut + 1] if cut >= 0 else b""


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


class LandingFiles:
    """The data files under ``locations`` (files, folders or prefixes, searched
    recursively), in key order; consecutive pending files are committed together, up to
    ``max_files`` files and ``max_bytes`` (compressed) bytes per batch. Files are fetched
    and gunzipped ahead in background threads (``look_ahead`` files, within a batch).
    ``io`` (the table's FileIO) configures S3 access. Each file's receipt time is its
    modification time."""

    def __init__(
        self,
        locations: Sequence[str],
        *,
        io: Any = None,
        max_files: int = 2000,
        max_bytes: int = 64 * 1024 * 1024,
        look_ahead: int = 8,
    ) -> None:
        self.locations = tuple(locations)
        self.io = io
        self.max_files = max_files
        self.max_bytes = max_bytes
        self.look_ahead = look_ahead

    def plan(self, ledger: Ledger) -> Plan:
        filesystem, files = discover(self.locations, self.io)
        committed = ledger.committed()
        pending = [f for f in files if f.uri not in committed]
        return Plan(
            self._batches(filesystem, pending),
            pending_positions=len(pending),
            pending_bytes=sum(f.size for f in pending),
            skipped=tuple(f.uri for f in files if f.uri in committed),
        )

    def _batches(self, filesystem: pafs.FileSystem, pending: list[SourceFile]) -> Iterator[Batch]:
        pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="lakehouse-fetch")
        try:
            for group in groups(pending, max_files=self.max_files, max_bytes=self.max_bytes):
                yield Batch(
                    tuple(f.position for f in group), self._payloads(filesystem, group, pool)
                )
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _payloads(
        self, filesystem: pafs.FileSystem, group: list[SourceFile], pool: ThreadPoolExecutor
    ) -> Iterator[Payload]:
        """The group's files in order, the next ones fetched in the background."""
        futures: dict[int, Future[tuple[bytes, str | None, int, bool]]] = {}
        for i, source in enumerate(group):
            for j in range(i, min(i + self.look_ahead, len(group))):
                if j not in futures:
                    futures[j] = pool.submit(_fetch_counting, filesystem, group[j])
            data, damage, newlines, objects = futures.pop(i).result()
            yield Payload(
                source.position,
                data,
                source.mtime,
                damage=damage,
                newlines=newlines,
                objects=objects,
            )
