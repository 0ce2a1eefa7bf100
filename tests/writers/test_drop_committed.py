"""``drop_committed`` removes exactly the rows whose event_id is committed in one of the
hours the batch touches (the README's rule: duplicates are dropped against the hours a
batch touches), with the writer's cache and without it (a plain scan of those hours);
and a warm cache whose chain back to its snapshot was cut by expiry scans again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest
from pyiceberg.table import Table

from catalog import open_catalog
from lakehouse.settings import Settings
from lakehouse.tables import load_tables
from tests.writers.events import BASE, event, rows
from writers import EventWriter
from writers.dedupe import CommittedIds, drop_committed


def _batch(*pairs: tuple[str, datetime]) -> pa.Table:
    return pa.table(
        {
            "event_id": pa.array([p[0] for p in pairs], pa.string()),
            "client_ts": pa.array([p[1] for p in pairs], pa.timestamp("us", tz="UTC")),
        }
    )


def _at(hour: int, minute: int) -> datetime:
    return BASE.astimezone(UTC) + timedelta(hours=hour, minutes=minute)


@pytest.fixture
def events(sqlite_settings: Settings) -> Table:
    """Hour 0 holds e000001..e000003, hour 2 holds only e000050."""
    with EventWriter(sqlite_settings) as writer:
        writer.write([event(i, minutes=i) for i in (1, 2, 3)] + [event(50, minutes=125)])
    table = load_tables(open_catalog(sqlite_settings), sqlite_settings.table).events
    assert sorted(rows(table).column("event_id").to_pylist()) == [
        "e000001",
        "e000002",
        "e000003",
        "e000050",
    ]
    return table


@pytest.mark.parametrize("cached", [False, True], ids=["scan", "cache"])
def test_exactly_the_rows_committed_in_their_own_hour_are_dropped(
    events: Table, cached: bool
) -> None:
    def drop(batch: pa.Table) -> tuple[list[str], int]:
        kept, dropped = drop_committed(batch, events, CommittedIds() if cached else None)
        return kept.column("event_id").to_pylist(), dropped

    batch = _batch(
        ("e000002", _at(0, 40)),  # committed in hour 0: dropped
        ("e000009", _at(0, 41)),  # new
        ("e000003", _at(1, 10)),  # committed in hour 0, which the batch touches: dropped
        ("e000001", _at(0, 1)),  # committed in hour 0: dropped
    )
    assert drop(batch) == (["e000009"], 3)
    assert drop(_batch(("e000003", _at(1, 10)))) == (["e000003"], 0)  # hour 0 untouched
    # hour 2 holds exactly one id
    assert drop(_batch(("e000050", _at(2, 5)))) == ([], 1)
    assert drop(_batch(("e000050", _at(2, 5)), ("e000051", _at(2, 6)))) == (["e000051"], 1)
    assert drop(_batch(("e000077", _at(5, 0)))) == (["e000077"], 0)  # an empty hour
    empty = _batch()
    kept, dropped = drop_committed(empty, events, CommittedIds() if cached else None)
    assert (kept.num_rows, dropped) == (0, 0)


def test_a_warm_cache_cut_off_from_its_snapshot_by_expiry_scans_again(
    sqlite_settings: Settings,
) -> None:
    """Writer a's cache holds hour 0 (its first lookup had to read it: the committed
    files' bounds enclose a's ids). Writer b commits e000100 into hour 0; compaction
    rewrites the hour; expiry leaves only the compaction's snapshot, without parent. The
    chain from the head to a's snapshot is broken, so a must read the hour again and drop
    b's event when it is resent to a."""
    from maintenance import compact, expire_snapshots

    seed, a, b = (EventWriter(sqlite_settings) for _ in range(3))
    seed.write([event(0, minutes=1), event(999, minutes=2)])  # bounds e000000..e000999
    seed.flush()
    a.write([event(i, minutes=10 + i) for i in range(1, 6)])
    a.flush()
    assert a._committed.scans == 1  # hour 0 is in a's cache
    b.write([event(100, minutes=30)])
    b.flush()
    table = load_tables(open_catalog(sqlite_settings), sqlite_settings.table).events
    assert compact(table).groups_committed == 1
    expire_snapshots(table, retention=timedelta(0), retain_last=1)
    a.write([event(100, minutes=30), event(200, minutes=40)])
    result = a.flush()
    assert a._committed.scans == 2
    assert (result.duplicates_dropped, result.records_written) == (1, 1)
    ids = rows(table).column("event_id").to_pylist()
    assert len(ids) == len(set(ids)) == 9
    for writer in (seed, a, b):
        writer.close()


def test_files_without_event_id_bounds_may_hold_any_id(sqlite_settings: Settings) -> None:
    """A data file written without event_id bounds (``write.metadata.metrics.column.
    event_id=none``, as another engine may write them) cannot be ruled out: the hour is
    read and a resend is dropped."""
    from writers.dedupe import may_hold

    with EventWriter(sqlite_settings) as writer:  # creates the table (hour 5)
        writer.write([event(90, minutes=300)])
    table = load_tables(open_catalog(sqlite_settings), sqlite_settings.table).events
    with table.transaction() as txn:
        txn.set_properties({"write.metadata.metrics.column.event_id": "none"})
    with EventWriter(sqlite_settings) as writer:
        writer.write([event(i, minutes=i) for i in (1, 2, 3)])
    table.refresh()
    tasks = [t for t in table.scan().plan_files() if t.file.record_count == 3]
    field_id = table.schema().find_field("event_id").field_id
    assert tasks and all(field_id not in (t.file.lower_bounds or {}) for t in tasks)
    hour = [int(BASE.timestamp()) // 3600]
    assert may_hold(table, hour, pa.array(["zzz"], pa.string()))
    kept, dropped = drop_committed(_batch(("e000002", _at(0, 2))), table, CommittedIds())
    assert (kept.num_rows, dropped) == (0, 1)
