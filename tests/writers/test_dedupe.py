"""The batch sort and in-batch dedupe against a plain sort on all keys (polars)."""

from __future__ import annotations

import polars as pl
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from lakehouse.schema import TIMESTAMP_ARROW
from writers import dedupe

rows = st.lists(
    st.tuples(
        st.integers(0, 6),  # client time: few values, so many ties
        st.sampled_from(["a", "b", "c", "d", "e", "é", "a2", "B"]),
        st.integers(0, 3),  # server time
        st.integers(0, 10**6),  # payload, to tell duplicates apart
    ),
    max_size=60,
)


def _table(values: list[tuple[int, str, int, int]]) -> pa.Table:
    return pa.table(
        {
            "event_id": pa.array([v[1] for v in values], pa.large_string()),
            "client_ts": pa.array([v[0] for v in values], pa.int64()).cast(TIMESTAMP_ARROW),
            "server_ts": pa.array([v[2] for v in values], pa.int64()).cast(TIMESTAMP_ARROW),
            "payload": pa.array([v[3] for v in values], pa.int64()),
        }
    )


def _expected(table: pa.Table) -> pa.Table:
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    out = frame.sort(["client_ts", "event_id", "server_ts"], maintain_order=True).unique(
        "event_id", keep="first", maintain_order=True
    )
    return out.to_arrow()


@settings(max_examples=300, deadline=None)
@given(rows, st.booleans())
def test_sort_and_dedupe_equals_a_full_sort(values, full_sort_of_ties) -> None:
    """Both ways of ordering tied client times: run by run, and one sort on all keys."""
    table = _table(values)
    saved = dedupe._MIN_TIES_FOR_FULL_SORT, dedupe._TIES_FOR_FULL_SORT
    if full_sort_of_ties:
        dedupe._MIN_TIES_FOR_FULL_SORT, dedupe._TIES_FOR_FULL_SORT = 0, 0.0
    try:
        got, dropped = dedupe.sort_and_dedupe(table)
    finally:
        dedupe._MIN_TIES_FOR_FULL_SORT, dedupe._TIES_FOR_FULL_SORT = saved
    want = _expected(table)
    assert dropped == table.num_rows - want.num_rows
    # the payload of equal keys may differ only between exact duplicates of all keys
    key = ["client_ts", "event_id", "server_ts"]
    assert got.select(key).to_pylist() == want.select(key).to_pylist()
    assert len(set(got.column("event_id").to_pylist())) == got.num_rows


def test_sorted_unique_input_is_returned_as_is() -> None:
    table = _table([(1, "a", 0, 1), (1, "b", 0, 2), (2, "a2", 0, 3)])
    got, dropped = dedupe.sort_and_dedupe(table)
    assert dropped == 0 and got is table


def test_ties_are_ordered_by_event_id_then_server_time() -> None:
    table = _table([(5, "z", 0, 1), (5, "m", 2, 2), (5, "m", 1, 3), (3, "q", 0, 4)])
    got, dropped = dedupe.sort_and_dedupe(table)
    assert dropped == 1
    assert got.column("event_id").to_pylist() == ["q", "m", "z"]
    assert got.column("payload").to_pylist() == [4, 3, 1]  # the earlier server time is kept


# --- committed ids, cached across a writer's own commits --------------------------------

from catalog import open_catalog  # noqa: E402
from lakehouse.settings import Settings  # noqa: E402
from lakehouse.tables import load_tables  # noqa: E402
from maintenance.compact import compact  # noqa: E402
from maintenance.inventory import KIND_COMPACTION, KIND_MANIFESTS  # noqa: E402
from tests.writers.events import event, rows  # noqa: E402
from writers import EventWriter  # noqa: E402


def _ids(settings: Settings) -> list[str]:
    table = load_tables(open_catalog(settings), settings.table).events
    return rows(table).column("event_id").to_pylist()


def _in_two_hours(n: int) -> dict:
    return event(n, minutes=30 + 6 * (n % 10))


def test_micro_batches_reuse_the_committed_ids_of_their_hours(settings: Settings) -> None:
    with EventWriter(settings) as writer:
        for b in range(6):  # every batch in the same two hours
            writer.write([_in_two_hours(b * 10 + i) for i in range(10)])
            writer.flush()
        scans = writer._committed.scans
        assert scans <= 2, "the hours are scanned once, then kept current"
        resent = writer.write([_in_two_hours(n) for n in (3, 25, 59)] + [event(999, minutes=31)])
        result = writer.flush()
    assert resent is None and result.duplicates_dropped == 3 and result.records_written == 1
    assert writer._committed.scans == scans
    ids = _ids(settings)
    assert len(ids) == 61 and len(set(ids)) == 61


def test_another_writers_commit_is_seen(settings: Settings) -> None:
    a, b = EventWriter(settings), EventWriter(settings)
    for batch in (range(5), range(5, 10)):  # the second commit makes a's cache current
        a.write([event(i, minutes=10 + i) for i in batch])
        a.flush()
    assert a._committed._as_of is not None
    b.write([event(100 + i, minutes=20 + i) for i in range(5)])  # same hour, not in a's cache
    b.flush()
    resent = [event(100, minutes=20), event(104, minutes=24), event(1, minutes=11)]
    a.write([*resent, event(200, minutes=40)])
    result = a.flush()
    assert result.duplicates_dropped == 3 and result.records_written == 1
    b.close(), a.close()
    ids = _ids(settings)
    assert sorted(ids) == sorted(f"e{i:06d}" for i in (*range(10), *range(100, 105), 200))


def test_maintenance_rewrites_keep_the_cache(settings: Settings) -> None:
    assert KIND_COMPACTION == "compaction" and KIND_MANIFESTS == "manifest-rewrite"
    assert {KIND_COMPACTION, KIND_MANIFESTS} == dedupe._ID_PRESERVING_KINDS
    with EventWriter(settings) as writer:
        for b in range(4):
            writer.write([event(b * 10 + i, minutes=5 * i + b) for i in range(10)])
            writer.flush()
        scans = writer._committed.scans
        events = load_tables(open_catalog(settings), settings.table).events
        assert compact(events).files_rewritten >= 4
        writer.write([event(7, minutes=35), event(33, minutes=18), event(500, minutes=3)])
        result = writer.flush()
        assert writer._committed.scans == scans, "a compaction keeps every id: no rescan"
    assert result.duplicates_dropped == 2 and result.records_written == 1
    ids = _ids(settings)
    assert len(ids) == 41 and len(set(ids)) == 41


def test_the_cache_is_bounded_and_refills(settings: Settings) -> None:
    with EventWriter(settings) as writer:
        writer._committed.max_ids = 15
        for h in range(4):  # 10 events in each of 4 hours
            writer.write([event(h * 10 + i, minutes=60 * h + i) for i in range(10)])
            writer.flush()
        assert writer._committed._size <= 15 + 10  # the hours of the last lookup stay
        resent = [event(0, minutes=0), event(12, minutes=62), event(25, minutes=125)]
        writer.write([*resent, event(39, minutes=189), event(77, minutes=2)])
        result = writer.flush()
    assert result.duplicates_dropped == 4 and result.records_written == 1
    assert len(_ids(settings)) == 41


def test_the_two_thread_take_equals_arrow_take() -> None:
    import numpy as np

    n = 150_000
    rng = np.random.default_rng(7)
    table = pa.table(
        {
            "event_id": pa.array([f"e{i}" for i in range(n)], pa.large_string()),
            "n": pa.array(rng.integers(0, 1000, n)),
            "props": pa.array([None if i % 7 else f'{{"i":{i}}}' for i in range(n)]),
        }
    )
    rows = rng.permutation(n)[: n - 10]
    assert dedupe.take(table, rows).equals(table.take(pa.array(rows)))
    # an event's width: every column lands, whichever half took it
    for k in range(4):
        table = table.append_column(f"c{k}", pa.array(rng.integers(0, 10**k + 1, n)))
    assert table.num_columns == 7
    assert dedupe.take(table, rows).equals(table.take(pa.array(rows)))
