"""Reading table files with fewer storage requests: :class:`LakehouseFileIO`.

Every file of an Iceberg table is written once under a new, unique name and never
changed; only the catalog's pointer moves. pyiceberg's ``PyArrowFileIO`` nevertheless
reads a manifest list each time it is asked for a snapshot's manifests, and a manifest
each time it plans a scan: a run that plans a table twice (the ledger's checkpoint, then
its lookup of the listed files) and then commits to it (the commit reads its parent's
manifest list) reads the same files two or three times, each read a HEAD and a GET on S3.

:class:`LakehouseFileIO` is ``PyArrowFileIO`` with two changes to reading:

* manifest lists and manifests (``.avro`` files) are kept, as bytes, in a process-wide
  cache bounded by :data:`CACHE_BYTES` (least recently used dropped first), so each is
  fetched once however often it is planned;
* a small file (up to :data:`SMALL_FILE` bytes) on object storage is fetched whole in one
  GET after the HEAD that gives its size, instead of a GET for the Parquet footer and
  another for the columns.

It is the catalog's FileIO unless the user names another (``py-io-impl``; see
:func:`lakehouse.storage.with_storage_defaults`). It overrides ``PyArrowFile.open`` and
uses its private ``_filesystem``: pyiceberg is pinned and ``tests/catalog/test_files.py``
checks both.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, cast

import pyarrow as pa
from pyarrow.fs import LocalFileSystem
from pyiceberg.io import InputStream
from pyiceberg.io.pyarrow import PyArrowFile, PyArrowFileIO
from pyiceberg.table import Table
from pyiceberg.utils.concurrent import ExecutorFactory

CACHE_BYTES = 64 * 1024 * 1024
"""Bytes of manifest lists and manifests kept by :data:`FILE_CACHE`."""

CACHE_ENTRY_BYTES = 8 * 1024 * 1024
"""A metadata file larger than this is read each time rather than cached."""

SMALL_FILE = 1024 * 1024
"""A file on object storage up to this size is fetched whole in one GET."""

PREFETCH_MANIFESTS = 32
"""Manifests :func:`prefetch_manifests` fetches at most (the newest first)."""

log = logging.getLogger(__name__)


class FileCache:
    """File contents by location, the most recently used kept within ``max_bytes``.

    Only immutable files belong here (Iceberg's manifest lists and manifests): their
    location names their content for good."""

    def __init__(self, max_bytes: int = CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()
        self._flights: dict[str, Future[bytes]] = {}  # being read
        self.hits = 0
        self.misses = 0

    def get(self, location: str) -> bytes | None:
        with self._lock:
            found = self._items.get(location)
            if found is None:
                self.misses += 1
            else:
                self._items.move_to_end(location)
                self.hits += 1
            return found

    def fetch(self, location: str, read: Callable[[], bytes]) -> bytes:
        """The cached content of ``location``, else ``read()`` (once: a caller asking
        while another reads it waits for that read)."""
        with self._lock:
            found = self._items.get(location)
            if found is not None:
                self._items.move_to_end(location)
                self.hits += 1
                return found
            flight = self._flights.get(location)
            mine = flight is None
            if flight is None:
                flight = self._flights[location] = Future()
                self.misses += 1
        if not mine:
            return flight.result()
        try:
            data = read()
        except BaseException as exc:
            flight.set_exception(exc)
            raise
        finally:
            with self._lock:
                self._flights.pop(location, None)
        self.put(location, data)
        flight.set_result(data)
        return data

    def put(self, location: str, data: bytes) -> None:
        if len(data) > min(CACHE_ENTRY_BYTES, self.max_bytes):
            return
        with self._lock:
            old = self._items.pop(location, None)
            self._size -= len(old) if old is not None else 0
            self._items[location] = data
            self._size += len(data)
            while self._size > self.max_bytes:
                _, dropped = self._items.popitem(last=False)
                self._size -= len(dropped)

    def clear(self) -> None:
        """Forget every file (a process that wants to read as a fresh one would)."""
        with self._lock:
            self._items.clear()
            self._size = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


FILE_CACHE = FileCache()


def immutable_metadata(location: str) -> bool:
    """Whether the location is a manifest list or a manifest (Avro, written once)."""
    return location.endswith(".avro")


class CachingFile(PyArrowFile):
    """A ``PyArrowFile`` whose reads go through :data:`FILE_CACHE` (metadata) or are
    fetched whole (small files on object storage); see the module docstring."""

    def open(self, seekable: bool = True) -> InputStream:
        if immutable_metadata(self.location):

            def read() -> bytes:
                with super(CachingFile, self).open(seekable=True) as stream:
                    data: bytes = stream.read()
                    return data

            return pa.BufferReader(FILE_CACHE.fetch(self.location, read))  # type: ignore[no-any-return]
        stream = cast(Any, super().open(seekable=seekable))  # a pyarrow NativeFile
        remote = not isinstance(self._filesystem, LocalFileSystem)
        if seekable and remote and stream.size() <= SMALL_FILE:
            with stream:
                return pa.BufferReader(stream.read())  # type: ignore[no-any-return]
        return cast(InputStream, stream)


class LakehouseFileIO(PyArrowFileIO):
    """``PyArrowFileIO`` reading through :class:`CachingFile`."""

    def new_input(self, location: str) -> PyArrowFile:
        plain = super().new_input(location)
        return CachingFile(
            location=plain.location,
            path=plain._path,
            fs=plain._filesystem,
            buffer_size=plain._buffer_size,
        )


def prefetch_manifests(table: Table) -> threading.Thread | None:
    """Fetch into :data:`FILE_CACHE`, in the background, the table's current manifest
    list and, when the table is unpartitioned (every scan plan reads every manifest), its
    newest :data:`PREFETCH_MANIFESTS` manifests, so a scan planned or a commit made later
    (after a listing, say) finds them; the thread, or None when there is nothing to fetch.
    The manifests of a partitioned table are left to the plan, which reads only those
    whose partitions its filter can match. A failure is left for the reads that need the
    files to report."""
    snapshot = table.current_snapshot()
    io = table.io
    if snapshot is None or not isinstance(io, LakehouseFileIO):
        return None

    def fetch(location: str) -> None:
        io.new_input(location).open().close()

    def run() -> None:
        try:
            manifests = snapshot.manifests(io)[:PREFETCH_MANIFESTS]
            if not table.spec().is_unpartitioned():
                return
            pool = ExecutorFactory.get_or_create()
            list(pool.map(fetch, [m.manifest_path for m in manifests]))
        except Exception:  # the reads that need the files report it
            log.debug("prefetching the manifests of %s failed", table.name(), exc_info=True)

    thread = threading.Thread(target=run, name="lakehouse-prefetch", daemon=True)
    thread.start()
    return thread
