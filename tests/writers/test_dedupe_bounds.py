"""The committed-id check of a batch skips reading an hour's data files when their
``event_id`` bounds (from the manifests) prove none can hold one of the batch's ids; a
resend is still found and dropped."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pyarrow as pa
import pytest
from pyiceberg.io.pyarrow import PyArrowFile

from catalog import open_catalog
from lakehouse.hours import hours_of_micros
from lakehouse.settings import Settings
from lakehouse.tables import load_tables
from tests.writers.events import event, rows
from writers import EventWriter
from writers.dedupe import CommittedIds, may_hold
from writers.files import micros


@pytest.fixture
def parquet_opens(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    opened: Counter[str] = Counter()
    real = PyArrowFile.open

    def counted(self: PyArrowFile, seekable: bool = True) -> Any:
        if self.location.endswith(".parquet"):
            opened[self.location] += 1
        return real(self, seekable)

    monkeypatch.setattr(PyArrowFile, "open", counted)
    return opened


def _committed(settings: Settings, ids: range) -> Any:
    """Events e<ids> in hour 0 (one minute apart), two commits (two files)."""
    half = (ids.start + ids.stop) // 2
    with EventWriter(settings) as writer:
        writer.write([event(i, minutes=i % 60) for i in range(ids.start, half)])
        writer.flush()
        writer.write([event(i, minutes=i % 60) for i in range(half, ids.stop)])
    return load_tables(open_catalog(settings), settings.table).events


def _hour(table: Any) -> list[int]:
    ts = rows(table).column("client_ts")
    return sorted(set(hours_of_micros(micros(ts)).tolist()))


def test_the_bounds_decide_which_ids_may_be_held(sqlite_settings: Settings) -> None:
    events = _committed(sqlite_settings, range(100, 140))  # e000100..e000139, two files
    hours = _hour(events)

    def ids(*values: str) -> pa.Array:
        return pa.array(values, pa.string())

    assert not may_hold(events, hours, ids("e000140", "e000999", "f"))  # above both files
    assert not may_hold(events, hours, ids("e000099", "a"))  # below both
    assert may_hold(events, hours, ids("e000200", "e000125"))  # a committed id
    assert may_hold(events, hours, ids("e0001155"))  # inside a file's bounds, not held
    assert may_hold(events, hours, ids("e000139")) and may_hold(events, hours, ids("e000100"))
    assert not may_hold(events, hours, ids("e0001195"))  # between the two files' bounds
    assert may_hold(events, hours, pa.array(["e000999", None], pa.string()))  # a null
    assert not may_hold(events, [h + 1 for h in hours], ids("e000125"))  # another hour
    assert not may_hold(events, hours, ids())


def test_new_ids_beside_committed_files_read_none_and_a_resend_is_dropped(
    sqlite_settings: Settings, parquet_opens: Counter[str]
) -> None:
    _committed(sqlite_settings, range(100, 140))
    parquet_opens.clear()
    with EventWriter(sqlite_settings) as writer:  # the same hour, ids after every file's
        new = writer.write([event(i, minutes=i % 60) for i in range(140, 150)])
        new = new or writer.flush()
    assert new is not None and new.records_written == 10 and new.duplicates_dropped == 0
    assert not parquet_opens  # no committed file could hold e000140..e000149: none read
    with EventWriter(sqlite_settings) as writer:  # a resend of committed events, and one new
        again = writer.write([event(i, minutes=i % 60) for i in (105, 130, 145, 150)])
        again = again or writer.flush()
    assert again is not None and again.duplicates_dropped == 3 and again.records_written == 1
    assert parquet_opens  # their files' bounds hold the ids: read
    events = load_tables(open_catalog(sqlite_settings), sqlite_settings.table).events
    got = rows(events).column("event_id").to_pylist()
    assert sorted(got) == [f"e{i:06d}" for i in range(100, 151)]  # each once


def test_a_warm_cache_reads_the_hour_once_and_then_keeps_it(sqlite_settings: Settings) -> None:
    events = _committed(sqlite_settings, range(100, 140))
    hours = _hour(events)
    cache = CommittedIds()
    outside = pa.array(["e000900"], pa.string())
    assert cache.lookup(events, hours, outside).to_pylist() == []  # cold: pruned, not read
    assert cache.scans == 0
    # the next lookup (the cache now current) reads the hour and keeps it
    got = cache.lookup(events, hours, outside).to_pylist()
    assert sorted(got) == [f"e{i:06d}" for i in range(100, 140)] and cache.scans == 1
    inside = pa.array(["e000120"], pa.string())
    assert len(cache.lookup(events, hours, inside)) == 40 and cache.scans == 1
