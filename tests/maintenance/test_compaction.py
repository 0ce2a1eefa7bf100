"""Compaction on real files, on both catalogs: fragmented hours become one sorted,
deduplicated file each, with replace/overwrite snapshots as specified."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from pyiceberg.table import Table
from pyiceberg.table.snapshots import Operation

from lakehouse.schema import SUMMARY_KIND
from maintenance import (
    SUMMARY_DUPLICATES_REMOVED,
    CompactionOptions,
    compact,
    plan_compaction,
)
from maintenance.checks import is_sorted
from maintenance.paths import canonical
from tests.maintenance.assertions import assert_compacted, live_files
from tests.maintenance.builders import Fed, append, feed, make_rows, multiset, sort_rows, table_rows


def compaction_snapshots(table: Table) -> list[object]:
    return [
        s for s in table.snapshots() if s.summary and s.summary.get(SUMMARY_KIND) == "compaction"
    ]


def test_compaction_makes_one_sorted_deduplicated_file_per_hour(fed: tuple[Table, Fed]) -> None:
    table, data = fed
    files_before = len(live_files(table))
    result = compact(table)
    assert result.groups_failed == 0 and result.groups_skipped == 0
    assert result.groups_committed == 3
    assert result.files_rewritten == files_before
    assert result.files_added == 3
    assert result.duplicates_removed == data.duplicates > 0
    assert result.records_added == len(data.expected())
    assert_compacted(table, data)
    # Compaction converges: nothing is left to do.
    assert plan_compaction(table).groups == ()


def test_dedupe_keeps_the_earliest_server_ts(fed: tuple[Table, Fed]) -> None:
    table, data = fed
    compact(table)
    rows = {r["event_id"]: r for r in table_rows(table)}
    racing = [r for r in data.rows if r["properties"] == '{"race": 1}']
    assert racing
    for row in racing:  # the racing copy arrived with the earlier server_ts: it wins
        assert rows[row["event_id"]] == row


def test_snapshot_operations_replace_and_overwrite(sqlite_events: Table) -> None:
    table = sqlite_events
    rng_rows = make_rows(random.Random(1), 60, datetime(2024, 5, 1, 0, tzinfo=UTC), "a")
    clean = make_rows(random.Random(2), 60, datetime(2024, 5, 1, 1, tzinfo=UTC), "b")
    for i in range(0, 60, 20):
        append(table, sort_rows(rng_rows[i : i + 20]))
        append(table, sort_rows(clean[i : i + 20]))
    append(table, sort_rows(rng_rows[:5]))  # a resend into hour 0 only
    total_before = int(table.current_snapshot().summary["total-records"])
    result = compact(table)
    assert result.replace_commits == 1 and result.overwrite_commits == 1
    table.refresh()
    ops = {
        s.summary.get("lakehouse.compacted-hours"): s.summary for s in compaction_snapshots(table)
    }
    replace, overwrite = ops["2024-05-01T01"], ops["2024-05-01T00"]
    assert replace.operation == Operation.REPLACE
    assert replace["added-records"] == replace["deleted-records"] == "60"
    assert replace[SUMMARY_DUPLICATES_REMOVED] == "0"
    assert overwrite.operation == Operation.OVERWRITE
    assert overwrite[SUMMARY_DUPLICATES_REMOVED] == "5"
    assert int(table.current_snapshot().summary["total-records"]) == total_before - 5


def test_hot_hour_is_left_alone(sqlite_fed: tuple[Table, Fed]) -> None:
    table, data = sqlite_fed
    hot = datetime(2024, 5, 2, 10, tzinfo=UTC)
    now = hot + timedelta(minutes=59, seconds=59)  # the clock the planner judges by
    rows = []
    for i in range(4):
        batch = make_rows(random.Random(i), 10, hot, f"hot{i}")
        append(table, sort_rows(batch))
        rows += batch
    plan = plan_compaction(table, CompactionOptions(hot_window=timedelta(hours=1)), now=now)
    assert plan.hours_hot == 1
    assert all(g.start < hot for g in plan.groups)
    compact(table, plan=plan)
    hot_hour = int((hot - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(hours=1))
    assert sum(1 for _, hour, _, _ in live_files(table) if hour == hot_hour) == 4
    # ... and is compacted once it has closed.
    later = compact(table, now=now + timedelta(hours=3))
    assert later.groups_committed == 1
    data.rows += rows
    assert_compacted(table, data)


def test_split_hour_groups_stay_bounded_and_dedupe_across_groups(
    sqlite_fed: tuple[Table, Fed],
) -> None:
    table, data = sqlite_fed
    options = CompactionOptions(max_group_bytes=12_000)
    plan = plan_compaction(table, options)
    assert all(g.parts > 1 for g in plan.groups)
    for group in plan.groups:  # bounded: only a single oversized file may exceed the bound
        assert group.bytes <= options.max_group_bytes or len(group.files) == 1
    result = compact(table, plan=plan)
    assert result.groups_committed == len(plan.groups) and result.groups_failed == 0
    assert result.duplicates_removed == data.duplicates
    table.refresh()
    rows = table_rows(table)
    assert multiset(rows) == multiset(data.expected())
    # Each group wrote its own sorted file; a second run (ample group size) merges them.
    compact(table, CompactionOptions())
    assert plan_compaction(table).groups == ()


def test_files_are_cut_near_the_on_disk_target(sqlite_events: Table) -> None:
    table = sqlite_events
    rng = random.Random(3)
    data = Fed()
    for b in range(12):
        rows = make_rows(rng, 1000, datetime(2024, 5, 1, 0, tzinfo=UTC), f"x{b}")
        append(table, sort_rows(rows))
        data.rows += rows
    total = sum(size for *_, size in live_files(table))
    target = total // 4
    result = compact(table, CompactionOptions(target_file_size=target))
    assert result.groups_committed == 1
    sizes = [size for *_, size in live_files(table)]
    assert 3 <= len(sizes) <= 5
    # Near the target: every file within 40% of it (the last adapts to what is left).
    assert all(0.6 * target <= s <= 1.4 * target for s in sizes), (sizes, target)
    assert_compacted(table, data, max_files_per_hour=len(sizes))
    # Files follow each other in (client_ts, event_id) order across the hour.
    bounds = sorted(
        (
            pq.read_table(canonical(p), columns=["client_ts", "event_id"])
            for p, *_ in live_files(table)
        ),
        key=lambda t: (t["client_ts"][0].as_py(), t["event_id"][0].as_py()),
    )
    for left, right in itertools.pairwise(bounds):
        last = (left["client_ts"][-1].as_py(), left["event_id"][-1].as_py())
        first = (right["client_ts"][0].as_py(), right["event_id"][0].as_py())
        assert last <= first
    assert all(is_sorted(b) for b in bounds)


def test_late_data_into_a_compacted_hour_is_merged(sqlite_fed: tuple[Table, Fed]) -> None:
    table, data = sqlite_fed
    compact(table)
    late = make_rows(random.Random(9), 7, datetime(2024, 5, 1, 1, tzinfo=UTC), "later")
    append(table, sort_rows(late), late=True)
    data.rows += late
    plan = plan_compaction(table)
    assert [g.reasons for g in plan.groups] == [("small-files", "late-data")]
    compact(table, plan=plan)
    assert_compacted(table, data)


@pytest.mark.parametrize("unsorted", [True, False])
def test_data_checks_find_unsorted_files_and_duplicates(
    sqlite_events: Table, unsorted: bool
) -> None:
    table = sqlite_events
    rows = make_rows(random.Random(5), 200, datetime(2024, 5, 1, 4, tzinfo=UTC), "big")
    first = rows if unsorted else sort_rows(rows)
    append(table, first)
    if not unsorted:
        append(table, sort_rows(rows[:100]))  # a resend: duplicates across two big files
    target = min(size for *_, size in live_files(table))  # nothing counts as small
    options = CompactionOptions(target_file_size=target)
    plan = plan_compaction(table, options)
    assert [g.reasons for g in plan.groups] == [("unsorted",) if unsorted else ("duplicates",)]
    assert (
        plan_compaction(table, CompactionOptions(target_file_size=target, check_data=False)).groups
        == ()
    )
    data = Fed(rows=list(first) + ([] if unsorted else sort_rows(rows[:100])))
    compact(table, plan=plan)
    assert_compacted(table, data, max_files_per_hour=3)


def test_plan_has_no_side_effects(sqlite_fed: tuple[Table, Fed]) -> None:
    table, _ = sqlite_fed
    location = table.metadata_location
    on_disk = sorted(p.name for p in Path(canonical(table.location())).rglob("*"))
    plan = plan_compaction(table)
    table.refresh()
    assert table.metadata_location == location
    assert sorted(p.name for p in Path(canonical(table.location())).rglob("*")) == on_disk
    as_dict = plan.to_dict()
    assert as_dict["groups_planned"] == 3 and as_dict["files_planned"] == plan.files
    group = plan.groups[0]
    assert group.sql_predicate() == (
        "client_ts >= TIMESTAMP '2024-05-01 00:00:00 UTC' AND client_ts < TIMESTAMP '2024-05-01 01:00:00 UTC'"
    )


def test_feed_is_reproducible(sqlite_events: Table) -> None:
    data = feed(sqlite_events)
    assert len(table_rows(sqlite_events)) == len(data.rows)
