"""The committed ids a batch is checked against come from exactly the batch's hours: a
gap between two hours is not read, contiguous hours are merged into one range."""

from __future__ import annotations

from datetime import timedelta

from pyiceberg.expressions import And, Or

from catalog import open_catalog
from lakehouse.settings import Settings
from lakehouse.tables import load_tables
from tests.writers.events import BASE, event
from writers import EventWriter
from writers.dedupe import committed_ids, hour_ranges_filter, hours_of


def test_committed_ids_of_exactly_the_given_hours(sqlite_settings: Settings) -> None:
    with EventWriter(sqlite_settings) as writer:  # one event in each of hours 3..8
        writer.write([event(h, minutes=60 * h + 30) for h in range(3, 9)])
    events = load_tables(open_catalog(sqlite_settings), sqlite_settings.table).events
    hour = [BASE + timedelta(hours=h) for h in range(10)]
    got = committed_ids(events, [hour[3], hour[7]]).to_pylist()
    assert sorted(got) == ["e000003", "e000007"]  # not 4, 5, 6 in the gap
    got = committed_ids(events, [hour[4], hour[5], hour[8]]).to_pylist()
    assert sorted(got) == ["e000004", "e000005", "e000008"]
    assert committed_ids(events, [hour[0]]).to_pylist() == []
    assert committed_ids(events, []).to_pylist() == []


def test_contiguous_hours_become_one_range() -> None:
    hour = [BASE + timedelta(hours=h) for h in range(10)]
    assert isinstance(hour_ranges_filter([hour[2], hour[3], hour[4]]), And)  # one range
    two = hour_ranges_filter([hour[2], hour[3], hour[6]])
    assert isinstance(two, Or)
    assert isinstance(two.left, And) and isinstance(two.right, And)


def test_hours_of_lists_each_hour_once_in_order() -> None:
    import pyarrow as pa

    ts = pa.array(
        [BASE + timedelta(minutes=m) for m in (130, 10, 70, 75, 190, 5)],
        pa.timestamp("us", tz="UTC"),
    )
    assert hours_of(ts) == [BASE + timedelta(hours=h) for h in (0, 1, 2, 3)]


def _ids(events: object) -> list[str]:
    events.refresh()  # type: ignore[attr-defined]
    return events.scan().to_arrow().column("event_id").to_pylist()  # type: ignore[attr-defined]


def test_one_cache_never_answers_for_another_table(sqlite_settings: Settings) -> None:
    from lakehouse.settings import TableName
    from writers.dedupe import CommittedIds

    other = sqlite_settings.with_table(TableName("analytics", "other"))
    with EventWriter(sqlite_settings) as a, EventWriter(other) as b:
        a.write([event(1, minutes=10)])
        b.write([event(2, minutes=20)])
    from lakehouse.hours import hour_of

    hour = hour_of(BASE)
    cache = CommittedIds()
    first = load_tables(open_catalog(sqlite_settings), sqlite_settings.table).events
    second = load_tables(open_catalog(other), other.table).events
    assert cache.lookup(first, [hour]).to_pylist() == ["e000001"]
    assert cache.lookup(second, [hour]).to_pylist() == ["e000002"]


def test_the_cache_starts_over_when_the_snapshots_it_knew_were_expired(
    sqlite_settings: Settings,
) -> None:
    """Writer a's cache is current at its own commit; writer b commits an event into the
    same hour; compaction rewrites the hour; expiry removes both older snapshots. The
    chain from the head back to a's snapshot is broken: a must scan again, and so drop
    b's event when it is sent to a again."""
    from maintenance import compact, expire_snapshots

    a, b = EventWriter(sqlite_settings), EventWriter(sqlite_settings)
    for batch in (range(5), range(5, 10)):
        a.write([event(i, minutes=10 + i) for i in batch])
        a.flush()
    b.write([event(100, minutes=30)])
    b.flush()
    events = load_tables(open_catalog(sqlite_settings), sqlite_settings.table).events
    assert compact(events).groups_committed == 1
    expired = expire_snapshots(events, retention=timedelta(0), retain_last=1)
    assert expired.snapshots_expired >= 3
    a.write([event(100, minutes=30), event(200, minutes=40)])
    result = a.flush()
    assert (result.duplicates_dropped, result.records_written) == (1, 1)
    ids = _ids(events)
    assert len(ids) == len(set(ids)) == 12


def test_a_compaction_that_removed_duplicates_keeps_the_cache(sqlite_settings: Settings) -> None:
    """An ``overwrite`` by compaction (it dropped a duplicate) keeps every id: the
    writer's cache stays current, no rescan."""
    from maintenance import compact

    writer = EventWriter(sqlite_settings)
    writer.write([event(i, minutes=10 + i) for i in range(5)])
    writer.flush()
    events = load_tables(open_catalog(sqlite_settings), sqlite_settings.table).events
    copy = events.scan(row_filter="event_id == 'e000002'").to_arrow()
    events.append(copy)  # a duplicate committed by someone else
    # with a resend among them (ids the committed files' bounds may hold: the hour is read)
    writer.write([event(10 + i, minutes=20 + i) for i in range(5)] + [event(1, minutes=11)])
    writer.flush()  # the foreign append empties the cache: one rescan here
    scans = writer._committed.scans
    assert scans == 1
    result = compact(events)
    assert result.duplicates_removed == 1 and result.overwrite_commits == 1
    writer.write([event(3, minutes=13), event(30, minutes=33)])
    again = writer.flush()
    assert writer._committed.scans == scans, "compaction keeps every id: no rescan"
    assert (again.duplicates_dropped, again.records_written) == (1, 1)
    ids = _ids(events)
    assert len(ids) == len(set(ids)) == 11


def test_each_hour_is_scanned_once_and_counted(sqlite_settings: Settings) -> None:
    writer = EventWriter(sqlite_settings)
    writer.write([event(i, minutes=30 + 60 * (i % 2)) for i in range(6)])  # hours 0 and 1
    writer.flush()
    assert writer._committed.scans == 0  # an empty table: nothing to scan
    # with a resend among them (the committed files' id bounds may hold it: hours are read;
    # test_dedupe_bounds.py has batches whose ids no file can hold)
    writer.write(
        [event(10 + i, minutes=40 + 60 * (i % 2)) for i in range(6)] + [event(0, minutes=30)]
    )
    assert writer.flush().duplicates_dropped == 1
    assert writer._committed.scans == 2  # hours 0 and 1, once each
    writer.write([event(20 + i, minutes=50 + 60 * (i % 2)) for i in range(6)])
    writer.flush()
    assert writer._committed.scans == 2  # both hours known: no scan
    writer.write([event(30, minutes=45), event(31, minutes=150)])  # hour 0 and new hour 2
    writer.flush()
    assert writer._committed.scans == 3


def test_distinct_hours_of_sorted_and_unsorted_input() -> None:
    import numpy as np

    from writers.dedupe import distinct_hours

    cases = {
        (): [],
        (5,): [5],
        (1, 1, 2, 2, 2, 7): [1, 2, 7],
        (2, 1): [1, 2],
        (0, 2, 1, 2): [0, 1, 2],
        (3, 3, 1): [1, 3],
    }
    for given, wanted in cases.items():
        assert distinct_hours(np.array(given, dtype=np.int64)).tolist() == wanted, given


def test_the_cache_keeps_at_most_max_ids_dropping_the_least_recent_hour(
    sqlite_settings: Settings,
) -> None:
    from lakehouse.hours import hour_of
    from writers.dedupe import CommittedIds

    with EventWriter(sqlite_settings) as writer:  # 10 events in each of hours 0..3
        writer.write([event(h * 10 + i, minutes=60 * h + i) for h in range(4) for i in range(10)])
    events = load_tables(open_catalog(sqlite_settings), sqlite_settings.table).events
    h = [hour_of(BASE) + k for k in range(4)]
    cache = CommittedIds(max_ids=20)
    steps = [
        ([h[0]], [h[0]], 10),
        ([h[1]], [h[0], h[1]], 20),  # exactly at the bound: both kept
        ([h[2]], [h[1], h[2]], 20),  # over it: the least recent (hour 0) goes
        ([h[3], h[1]], [h[3], h[1]], 20),  # hours of this lookup stay; hour 2 goes
    ]
    for asked, kept, size in steps:
        got = cache.lookup(events, asked).to_pylist()
        assert sorted(got) == sorted(
            f"e{k * 10 + i:06d}" for k in range(4) if h[k] in asked for i in range(10)
        )
        assert list(cache._hours) == kept and cache._size == size, (asked, list(cache._hours))
