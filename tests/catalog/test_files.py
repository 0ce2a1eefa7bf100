"""The catalog's FileIO (catalog.files): manifests fetched once per process, small remote
files in one read, and the private parts of pyiceberg's PyArrowFile it relies on."""

from __future__ import annotations

import inspect
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pytest
from pyiceberg.io.pyarrow import PyArrowFile, PyArrowFileIO
from pyiceberg.table import Table

from catalog import files, open_catalog
from catalog.files import FILE_CACHE, CachingFile, FileCache, LakehouseFileIO
from lakehouse.settings import Settings
from lakehouse.storage import FILE_IO_CLASS, FILE_IO_PROPERTY, with_storage_defaults
from tests.maintenance.builders import append, hour_start, make_rows


def test_pyarrow_file_has_the_private_parts_caching_file_uses(tmp_path: Path) -> None:
    path = tmp_path / "x.bin"
    path.write_bytes(b"abc")
    plain = PyArrowFileIO().new_input(str(path))
    assert type(plain) is PyArrowFile
    assert isinstance(plain._filesystem, pafs.FileSystem)
    assert isinstance(plain._path, str) and isinstance(plain._buffer_size, int)
    assert list(inspect.signature(PyArrowFile.__init__).parameters) == [
        "self",
        "location",
        "path",
        "fs",
        "buffer_size",
    ]
    assert "seekable" in inspect.signature(PyArrowFile.open).parameters


def test_the_catalog_uses_it_unless_the_user_names_another(sqlite_events: Table) -> None:
    assert isinstance(sqlite_events.io, LakehouseFileIO)
    assert with_storage_defaults({})[FILE_IO_PROPERTY] == FILE_IO_CLASS
    theirs = "pyiceberg.io.fsspec.FsspecFileIO"
    assert with_storage_defaults({FILE_IO_PROPERTY: theirs})[FILE_IO_PROPERTY] == theirs


def _fragmented(table: Table, appends: int) -> set[str]:
    rng = random.Random(5)
    ids: set[str] = set()
    for k in range(appends):
        rows = make_rows(rng, 20, hour_start(k % 3), f"a{k}-")
        ids.update(str(r["event_id"]) for r in rows)
        append(table, rows)
    return ids


@pytest.fixture
def storage_opens(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Locations opened on storage (pyiceberg's own open, under the cache)."""
    opened: Counter[str] = Counter()
    real = PyArrowFile.open

    def counted(self: PyArrowFile, seekable: bool = True) -> Any:
        opened[self.location] += 1
        return real(self, seekable)

    monkeypatch.setattr(PyArrowFile, "open", counted)
    return opened


def test_each_manifest_is_fetched_once_however_often_the_table_is_planned(
    sqlite_events: Table, storage_opens: Counter[str]
) -> None:
    ids = _fragmented(sqlite_events, 5)
    FILE_CACHE.clear()
    storage_opens.clear()
    plans = [sorted(t.file.file_path for t in sqlite_events.scan().plan_files()) for _ in range(3)]
    got = sqlite_events.scan(selected_fields=("event_id",)).to_arrow().column("event_id")
    assert sorted(got.to_pylist()) == sorted(ids)  # every row, once
    assert plans[0] == plans[1] == plans[2] and len(plans[0]) == 5
    snapshot = sqlite_events.current_snapshot()
    assert snapshot is not None
    manifests = [m.manifest_path for m in snapshot.manifests(sqlite_events.io)]
    avro = {loc: n for loc, n in storage_opens.items() if loc.endswith(".avro")}
    # the manifest list and each of the 5 manifests, one fetch each, for 4 plans
    assert avro == {snapshot.manifest_list: 1, **{m: 1 for m in manifests}}
    # data files are not cached: the scan opened each of them once
    assert sum(1 for loc in storage_opens if loc.endswith(".parquet")) == 5
    # what the cache serves is the file's content
    for location in manifests:
        cached = FILE_CACHE.get(location)
        assert cached is not None
        assert cached == Path(location.removeprefix("file://")).read_bytes()


def test_a_cleared_cache_fetches_again(sqlite_events: Table, storage_opens: Counter[str]) -> None:
    _fragmented(sqlite_events, 2)
    FILE_CACHE.clear()
    storage_opens.clear()
    list(sqlite_events.scan().plan_files())
    first = sum(storage_opens.values())
    FILE_CACHE.clear()
    list(sqlite_events.scan().plan_files())
    assert first == 3 and sum(storage_opens.values()) == 2 * first


def test_the_cache_keeps_the_most_recently_used_within_its_bytes() -> None:
    cache = FileCache(max_bytes=10)
    cache.put("a", b"1234")
    cache.put("b", b"5678")
    assert cache.get("a") == b"1234"  # a is now the most recent
    cache.put("c", b"90ab")  # 12 bytes: b, the least recent, goes
    assert cache.get("b") is None and cache.get("a") == b"1234" and cache.get("c") == b"90ab"
    cache.put("big", b"x" * 11)  # larger than the whole cache: not kept, nothing dropped
    assert cache.get("big") is None and len(cache) == 2
    cache.put("a", b"12")  # replaced, counted once
    cache.put("d", b"12345678")
    assert cache.get("a") == b"12" and cache.get("d") == b"12345678" and cache.get("c") is None


def test_a_small_file_on_object_storage_is_read_whole_and_a_large_one_is_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = bytes(range(256)) * 40  # 10,240 bytes
    path = tmp_path / "data.parquet"
    path.write_bytes(data)
    remote = pafs.SubTreeFileSystem(str(tmp_path), pafs.LocalFileSystem())  # not local

    def opened(fs: pafs.FileSystem, name: str) -> Any:
        return CachingFile(location=f"s3://b/{name}", path=name, fs=fs).open()

    whole = opened(remote, "data.parquet")
    assert isinstance(whole, pa.BufferReader) and whole.read() == data
    monkeypatch.setattr(files, "SMALL_FILE", len(data) - 1)
    streamed = opened(remote, "data.parquet")
    assert not isinstance(streamed, pa.BufferReader)
    assert streamed.read_at(16, 100) == data[100:116]
    local = CachingFile(location=str(path), path=str(path), fs=pafs.LocalFileSystem()).open()
    assert not isinstance(local, pa.BufferReader) and local.read() == data


def test_a_prefetch_fetches_the_list_and_newest_manifests_once(
    sqlite_settings: Settings, storage_opens: Counter[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = open_catalog(sqlite_settings)
    catalog.create_namespace_if_not_exists("plain")
    table = catalog.create_table("plain.log", pa.schema([("k", pa.int64())]))  # unpartitioned
    for k in range(5):
        table.append(pa.table({"k": [k, k + 10]}))
    FILE_CACHE.clear()
    storage_opens.clear()
    monkeypatch.setattr(files, "PREFETCH_MANIFESTS", 2)
    thread = files.prefetch_manifests(table)
    assert thread is not None
    thread.join(30)
    snapshot = table.current_snapshot()
    assert snapshot is not None
    newest = [m.manifest_path for m in snapshot.manifests(table.io)][:2]
    assert set(storage_opens) == {snapshot.manifest_list, *newest}  # before any plan
    got = table.scan().to_arrow().column("k").to_pylist()
    assert sorted(got) == sorted([k for k in range(5)] + [k + 10 for k in range(5)])
    avro = [n for loc, n in storage_opens.items() if loc.endswith(".avro")]
    assert len(avro) == 1 + 5 and set(avro) == {1}  # the rest fetched by the plan, once


def test_a_partitioned_table_has_only_its_manifest_list_prefetched(
    sqlite_events: Table, storage_opens: Counter[str]
) -> None:
    _fragmented(sqlite_events, 3)
    FILE_CACHE.clear()
    storage_opens.clear()
    thread = files.prefetch_manifests(sqlite_events)
    assert thread is not None
    thread.join(30)
    snapshot = sqlite_events.current_snapshot()
    assert snapshot is not None
    assert list(storage_opens) == [snapshot.manifest_list]  # the plan picks its manifests


def test_nothing_to_prefetch_for_an_empty_table(sqlite_events: Table) -> None:
    assert files.prefetch_manifests(sqlite_events) is None


def test_readers_of_a_file_being_fetched_wait_for_that_one_fetch() -> None:
    import threading
    import time

    cache = FileCache()
    calls: list[int] = []

    def slow() -> bytes:
        calls.append(1)
        time.sleep(0.2)
        return b"content"

    got: list[bytes] = []
    threads = [
        threading.Thread(target=lambda: got.append(cache.fetch("m", slow))) for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert got == [b"content"] * 4 and len(calls) == 1
    assert cache.fetch("m", slow) == b"content" and len(calls) == 1

    def broken() -> bytes:
        raise OSError("unavailable")

    with pytest.raises(OSError, match="unavailable"):
        cache.fetch("n", broken)
    assert cache.fetch("n", lambda: b"later") == b"later"  # a failed read is not kept


def test_a_check_reads_what_storage_holds_not_what_the_process_cached(
    sqlite_settings: Settings, sqlite_events: Table
) -> None:
    from maintenance.check import check_table

    _fragmented(sqlite_events, 2)
    snapshot = sqlite_events.current_snapshot()
    assert snapshot is not None
    list(sqlite_events.scan().plan_files())  # the manifest list is now in the cache
    assert FILE_CACHE.get(snapshot.manifest_list) is not None
    Path(snapshot.manifest_list.removeprefix("file://")).write_bytes(b"not avro at all")
    result = check_table(open_catalog(sqlite_settings), sqlite_settings.table)
    assert [p.path for p in result.problems if p.kind == "unreadable-file"] == [
        snapshot.manifest_list
    ]
