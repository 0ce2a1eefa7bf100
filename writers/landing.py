"""Landing-zone ingest: newline-delimited JSON files (gzipped or not), exactly once per file.

Files are listed in key order and grouped into few commits. For each group the events
are committed (idempotency key = the group's files), then its rejects, then one row per
file in the ``<table>_ingested`` log. A re-run skips logged files; a run killed between
those steps re-forms the same group, whose events commit is then found by its key, and
event-level dedupe covers any other regrouping. So every event lands exactly once.
"""

from __future__ import annotations

import hashlib
import logging
import time
import types
import zlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
from pyarrow import fs as pafs

from lakehouse.errors import ConfigError, UsageError
from lakehouse.retry import retry_storage
from lakehouse.schema import INGESTED_SCHEMA
from lakehouse.settings import Settings
from lakehouse.storage import filesystem_for, storage_error
from writers import commit
from writers.parse import BOM, Parsed, join_files, objects_only, parse_ndjson
from writers.results import IngestResult, WriteResult
from writers.writer import EventWriter

log = logging.getLogger(__name__)

SUFFIXES = (".ndjson", ".jsonl", ".json")
GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class SourceFile:
    uri: str
    path: str
    size: int
    mtime: datetime


Progress = Callable[[int, int], None]
"""Called as files are read, with (files, bytes) read since the last call."""


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


def ingested_sources(writer: EventWriter) -> set[str]:
    table = writer.tables.ingested
    table.refresh()
    if table.current_snapshot() is None:
        return set()
    return set(table.scan(selected_fields=("source",)).to_arrow().column("source").to_pylist())


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


def group_key(group: Sequence[SourceFile]) -> str:
    digest = hashlib.blake2b(digest_size=16)
    for f in group:
        digest.update(f"{f.uri}\x00{f.size}\x00".encode())
    return "f-" + digest.hexdigest()


def ingest(
    locations: Sequence[str],
    settings: Settings | None = None,
    *,
    writer: EventWriter | None = None,
    max_group_files: int = 2000,
    max_group_bytes: int = 64 * 1024 * 1024,
    progress: Progress | None = None,
    on_plan: Callable[[int, int, int], None] | None = None,
) -> IngestResult:
    """Ingest every not-yet-ingested data file under ``locations``.

    ``on_plan(files_pending, bytes_pending, files_skipped)`` is called once files are
    listed; ``progress(files, bytes)`` as files are read.
    """
    started = time.perf_counter()
    writer = writer or EventWriter(settings, max_records=1 << 62, max_bytes=1 << 62, max_age=1e12)
    filesystem, files = discover(locations, writer.tables.events.io)
    done = ingested_sources(writer)
    pending = [f for f in files if f.uri not in done]
    skipped = tuple(f.uri for f in files if f.uri in done)
    if on_plan:
        on_plan(len(pending), sum(f.size for f in pending), len(skipped))
    total = WriteResult()
    commits = 0
    bytes_read = 0
    prefetch = ThreadPoolExecutor(max_workers=2, thread_name_prefix="lakehouse-fetch")
    try:
        for group in groups(pending, max_files=max_group_files, max_bytes=max_group_bytes):
            counts = _read_group(filesystem, group, writer, prefetch, progress)
            result = writer.flush(batch_key=group_key(group))
            _log_files(writer, group, counts, group_key(group))
            total = total + result
            commits += 1
            group_bytes = sum(f.size for f in group)
            bytes_read += group_bytes
    finally:
        prefetch.shutdown(wait=True, cancel_futures=True)
    return IngestResult(
        files=len(pending),
        files_skipped=len(skipped),
        bytes_read=bytes_read,
        commits=commits,
        records_read=total.records_read,
        records_written=total.records_written,
        duplicates_dropped=total.duplicates_dropped,
        records_rejected=total.records_rejected,
        late_records=total.late_records,
        snapshot_ids=total.snapshot_ids,
        seconds=time.perf_counter() - started,
        fields_folded=total.fields_folded,
        warnings=total.warnings,
        skipped_sources=skipped,
    )


JOIN_BYTES = 32 * 1024 * 1024
"""Files are joined into buffers of about this many (uncompressed) bytes and parsed,
validated and conformed once per buffer, so small files cost little each."""


def _read_group(
    filesystem: pafs.FileSystem,
    group: Sequence[SourceFile],
    writer: EventWriter,
    pool: ThreadPoolExecutor,
    progress: Progress | None = None,
) -> list[int]:
    """Read the group's files in order (the next ones are fetched and gunzipped in the
    background, a bounded look-ahead), join them into buffers, and buffer their rows in
    the writer. Returns the records read from each file."""
    ahead = 8
    futures: dict[int, Future[tuple[bytes, str | None, int, bool]]] = {}
    counts: list[int] = []
    pending: list[tuple[SourceFile, bytes, str | None, int, bool]] = []
    pending_bytes = 0

    def parse_pending() -> None:
        nonlocal pending_bytes
        if not pending:
            return
        data, line_map = join_files(
            [(f.uri, d) for f, d, *_ in pending],
            newlines=[p[3] for p in pending],
            objects=[p[4] for p in pending],
        )
        parsed = parse_ndjson(data, line_map)
        per_source = parsed.per_source or [0] * len(pending)
        for k, (f, _, damage, *_) in enumerate(pending):
            if damage:
                parsed.failures.append((f.uri, None, None, damage))
                parsed.records += 1
                per_source[k] += 1
        counts.extend(per_source)
        writer.add_parsed(parsed, receipt_time=[f.mtime for f, *_ in pending])
        pending.clear()
        pending_bytes = 0

    for i, source in enumerate(group):
        for j in range(i, min(i + ahead, len(group))):
            if j not in futures:
                futures[j] = pool.submit(_fetch_counting, filesystem, group[j])
        data, damage, newlines, objects = futures.pop(i).result()
        if progress:
            progress(1, source.size)
        if len(data) >= JOIN_BYTES // 4:  # big enough alone: parse it without a joining copy
            parse_pending()
        pending.append((source, data, damage, newlines, objects))
        pending_bytes += len(data)
        if pending_bytes >= JOIN_BYTES or len(data) >= JOIN_BYTES // 4:
            parse_pending()
    parse_pending()
    return counts


def _log_files(
    writer: EventWriter, group: Sequence[SourceFile], counts: Sequence[int], key: str
) -> None:
    schema = INGESTED_SCHEMA.as_arrow()
    now = datetime.now(UTC)
    rows = pa.table(
        {
            "source": pa.array([f.uri for f in group], schema.field("source").type),
            "size": pa.array([f.size for f in group], pa.int64()),
            "records": pa.array(list(counts), pa.int64()),
            "batch_key": pa.array([key] * len(group), schema.field("batch_key").type),
            "ingested_at": pa.array([now] * len(group), schema.field("ingested_at").type),
        },
        schema=schema,
    )
    commit.append_with_key(writer.tables.ingested, rows, key=key, kind="ingested")
