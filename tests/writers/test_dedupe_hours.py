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
