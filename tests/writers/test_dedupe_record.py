"""``CommittedIds.record``: the owner's own commits are added to the cached hours, so the
next lookup needs no scan; anything else in between makes it scan again. Expected ids
are read from the table with pyiceberg's scan, not through the cache."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.table import Table

from catalog import open_catalog
from lakehouse.settings import Settings
from lakehouse.tables import ensure_tables
from tests.writers.events import BASE
from tests.writers.test_commit_races import _batch
from writers import commit
from writers.dedupe import CommittedIds

H0 = int(BASE.timestamp()) // 3600  # hours since the epoch of BASE's hour and the next
H1 = H0 + 1


def _ids_in(table: Table, hour: int) -> list[str]:
    table.refresh()
    rows = table.scan(selected_fields=("event_id", "client_ts")).to_arrow()
    hours = pc.divide(pc.cast(rows.column("client_ts"), pa.int64()), 3_600_000_000)
    return sorted(rows.filter(pc.equal(hours, hour)).column("event_id").to_pylist())


def _commit(
    table: Table, numbers: range, key: str, settings: Settings
) -> tuple[pa.Table, list[int]]:
    batch = _batch(settings, numbers)
    return batch, commit.commit_events(
        table, batch, batch.slice(0, 0), key=key, late_hours=[], writer="w"
    )


def test_own_commits_are_added_to_the_cached_hours(sqlite_settings: Settings) -> None:
    events = ensure_tables(open_catalog(sqlite_settings), sqlite_settings.table)[0].events
    _commit(events, range(3), "k0", sqlite_settings)
    cache = CommittedIds()
    assert sorted(cache.lookup(events, [H0]).to_pylist()) == _ids_in(events, H0)
    assert cache.scans == 1
    rows, ids = _commit(events, range(3, 6), "k1", sqlite_settings)
    more, more_ids = _commit(events, range(60, 62), "k2", sqlite_settings)  # hour H1
    # recorded in commit order: the first was committed on the cache's snapshot
    cache.record(events, rows, ids)
    cache.record(events, more, more_ids)
    assert sorted(cache.lookup(events, [H0]).to_pylist()) == _ids_in(events, H0)
    assert cache.scans == 1  # no scan: both commits were recorded
    assert cache._size == 6  # H1 was not cached: its ids were not added
    assert sorted(cache.lookup(events, [H1]).to_pylist()) == _ids_in(events, H1)
    assert cache.scans == 2 and cache._size == 8


def test_a_batch_of_two_snapshots_is_recorded_up_to_the_last(
    sqlite_settings: Settings,
) -> None:
    events = ensure_tables(open_catalog(sqlite_settings), sqlite_settings.table)[0].events
    _commit(events, range(3), "k0", sqlite_settings)
    cache = CommittedIds()
    cache.lookup(events, [H0, H1])
    batch = _batch(sqlite_settings, [3, 4, 61])
    late = batch.filter(pc.equal(batch.column("event_id"), "e000061"))
    on_time = batch.filter(pc.not_equal(batch.column("event_id"), "e000061"))
    hours = [BASE.replace(hour=1)]
    ids = commit.commit_events(events, on_time, late, key="k", late_hours=hours, writer="w")
    assert len(ids) == 2
    cache.record(events, batch, ids)
    assert sorted(cache.lookup(events, [H0, H1]).to_pylist()) == sorted(
        _ids_in(events, H0) + _ids_in(events, H1)
    )
    assert cache.scans == 2  # the two hours of the first lookup, nothing since


def test_another_commit_in_between_is_not_recorded_over(sqlite_settings: Settings) -> None:
    events = ensure_tables(open_catalog(sqlite_settings), sqlite_settings.table)[0].events
    _commit(events, range(3), "k0", sqlite_settings)
    cache = CommittedIds()
    cache.lookup(events, [H0])
    _commit(events, range(10, 12), "other", sqlite_settings)  # another writer's
    rows, ids = _commit(events, range(3, 5), "k1", sqlite_settings)
    cache.record(events, rows, ids)  # its parent is not the cache's snapshot: left
    assert cache._size == 3
    assert sorted(cache.lookup(events, [H0]).to_pylist()) == _ids_in(events, H0)
    assert cache.scans == 2  # scanned again, and found the other writer's ids
    assert len(_ids_in(events, H0)) == 7
    empty = CommittedIds()
    empty.record(events, rows, ids)  # never looked up: nothing to add to
    assert empty._size == 0 and empty._as_of is None
    cache.record(events, rows, [])
    assert cache._size == 7
