"""The compaction planner's parts on hand-made inventories: option checks, the
``max-commits`` property, commit batches, bin-packing an hour, what a plan reports
(every field of its dictionary written out by hand) and which hours it leaves alone."""

from __future__ import annotations

import logging
import random
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from lakehouse.errors import ConfigError, UsageError
from lakehouse.settings import Settings
from maintenance.inventory import DataFileInfo, HourFiles, Inventory
from maintenance.plan import (
    CompactionOptions,
    CompactionPlan,
    HourSkip,
    RewriteGroup,
    commit_batches,
    hour_reasons,
    max_commits_property,
    plan_compaction,
    plan_from_inventory,
    split_hour,
)
from tests.maintenance.builders import append, hour_start, make_rows, sort_rows

H10 = 474_970  # 2024-03-08T10:00 UTC as an hour(client_ts) ordinal (hours since 1970)
H10_START = datetime(2024, 3, 8, 10, tzinfo=UTC)


def test_the_ordinal_is_the_hour_written_above() -> None:
    assert datetime(1970, 1, 1, tzinfo=UTC) + timedelta(hours=H10) == H10_START


def _file(
    name: str,
    size: int,
    *,
    records: int = 1,
    hour: int = H10,
    minute: int | None = 0,
    compacted: bool = False,
    declared_sorted: bool = True,
    late: bool = False,
) -> DataFileInfo:
    start = H10_START + timedelta(hours=hour - H10)
    return DataFileInfo(
        path=f"s3://b/t/data/{name}.parquet",
        size=size,
        records=records,
        hour=hour,
        compacted=compacted,
        declared_sorted=declared_sorted,
        added_snapshot_id=1,
        added_kind="on-time",
        late=late,
        added_at=None,
        client_ts_min=None if minute is None else start + timedelta(minutes=minute),
        data_file=None,  # type: ignore[arg-type]  # planning never reads it
    )


def _inventory(*hours: HourFiles) -> Inventory:
    return Inventory(
        table="analytics.events",
        snapshot_id=42,
        taken_at=H10_START,
        sort_order_id=1,
        hours=hours,
        other_files=0,
        data_manifests=1,
        delete_manifests=0,
        metadata=None,  # type: ignore[arg-type]  # read only to scan data, never here
        metadata_location="s3://b/t/metadata/v1.metadata.json",
    )


def _table(**properties: str) -> Any:
    return SimpleNamespace(properties=properties, io=None)


def _refused(message: str, **options: Any) -> None:
    with pytest.raises(UsageError) as caught:
        CompactionOptions(**options)
    assert str(caught.value) == message


def test_options_refuse_each_bad_value_and_take_each_edge() -> None:
    sizes = "target file size and max group size must be positive"
    _refused(sizes, target_file_size=0)
    _refused(sizes, max_group_bytes=0)
    _refused("max_commits must be at least 1", max_commits=0)
    _refused("small_file_fraction must be in (0, 1]", small_file_fraction=0)
    _refused("small_file_fraction must be in (0, 1]", small_file_fraction=1.01)
    _refused("hot_window cannot be negative", hot_window=timedelta(microseconds=-1))
    edge = CompactionOptions(
        target_file_size=1,
        max_group_bytes=1,
        max_commits=1,
        small_file_fraction=1,
        hot_window=timedelta(0),
    )
    assert (edge.target_file_size, edge.max_group_bytes, edge.max_commits) == (1, 1, 1)
    defaults = CompactionOptions()
    assert defaults.target_file_size == 128 * 1024 * 1024
    assert defaults.max_group_bytes == 512 * 1024 * 1024
    assert defaults.small_file_fraction == 0.75 and defaults.hot_window == timedelta(hours=1)
    assert defaults.deduplicate and defaults.check_data and defaults.max_commits is None


def test_small_file_bytes_is_the_fraction_of_the_target_rounded_down() -> None:
    assert CompactionOptions(target_file_size=1000).small_file_bytes == 750
    assert CompactionOptions(target_file_size=999, small_file_fraction=0.5).small_file_bytes == 499


def test_options_from_settings_take_its_size_and_lateness_and_the_overrides() -> None:
    settings = Settings(target_file_size=4096, allowed_lateness=timedelta(minutes=20))
    options = CompactionOptions.from_settings(settings, max_commits=3, max_group_bytes=None)
    assert options == CompactionOptions(
        target_file_size=4096, hot_window=timedelta(minutes=20), max_commits=3
    )
    assert CompactionOptions.from_settings(settings, target_file_size=10).target_file_size == 10


def test_max_commits_from_the_table_property() -> None:
    assert max_commits_property({}) == 10
    assert max_commits_property({"lakehouse.compaction.max-commits": " "}) == 10
    assert max_commits_property({"lakehouse.compaction.max-commits": "1"}) == 1
    assert max_commits_property({"lakehouse.compaction.max-commits": "25"}) == 25
    for raw in ("0", "-2", "three", "2.5"):
        with pytest.raises(ConfigError) as caught:
            max_commits_property({"lakehouse.compaction.max-commits": raw})
        assert str(caught.value) == (
            "table property lakehouse.compaction.max-commits must be a whole number >= 1, "
            f"not {raw!r}"
        )
    options = CompactionOptions()
    assert options.for_table(_table()).max_commits == 10
    assert options.for_table(_table(**{"lakehouse.compaction.max-commits": "4"})).max_commits == 4
    fixed = CompactionOptions(max_commits=2)
    assert fixed.for_table(_table(**{"lakehouse.compaction.max-commits": "4"})) is fixed


def test_commit_batches_are_contiguous_and_at_most_max_commits() -> None:
    groups = tuple(f"g{i}" for i in range(5))
    assert commit_batches((), 3) == []
    assert commit_batches(groups, 2) == [("g0", "g1", "g2"), ("g3", "g4")]  # type: ignore[arg-type]
    assert commit_batches(groups, 3) == [("g0", "g1"), ("g2", "g3"), ("g4",)]  # type: ignore[arg-type]
    assert commit_batches(groups, 1) == [groups]  # type: ignore[arg-type]
    assert commit_batches(groups, 0) == [groups]  # type: ignore[arg-type]
    assert commit_batches(groups, 9) == [(g,) for g in groups]  # type: ignore[arg-type]


def test_an_hour_is_packed_in_client_ts_order_into_bounded_groups() -> None:
    files = (
        _file("late", 4, minute=50, records=40),
        _file("early", 3, minute=5, records=30),
        _file("unknown", 2, minute=None, records=20),  # no client_ts_min: the hour's start
        _file("middle", 5, minute=30, records=50),
        _file("middle2", 1, minute=30, records=10),
    )
    item = HourFiles(hour=H10, files=files)
    groups = split_hour(item, ("small-files",), CompactionOptions(max_group_bytes=6))
    names = [[f.path.rsplit("/", 1)[1].removesuffix(".parquet") for f in g.files] for g in groups]
    # unknown (2) + early (3) = 5; + middle (5) > 6; middle (5) + middle2 (1) = 6; late (4)
    assert names == [["unknown", "early"], ["middle", "middle2"], ["late"]]
    assert [g.group_id for g in groups] == ["2024-03-08T10#1", "2024-03-08T10#2", "2024-03-08T10#3"]
    assert [(g.part, g.parts, g.hour) for g in groups] == [(1, 3, H10), (2, 3, H10), (3, 3, H10)]
    assert all(g.reasons == ("small-files",) for g in groups)
    for group in groups:
        assert set(group.siblings) == set(files) - set(group.files)
    assert [g.bytes for g in groups] == [5, 6, 4] and [g.records for g in groups] == [50, 60, 40]
    # One group: no siblings; a file larger than the bound still gets a group of its own.
    one = split_hour(item, ("unsorted",), CompactionOptions(max_group_bytes=15))
    assert len(one) == 1 and one[0].siblings == () and one[0].parts == 1
    big = split_hour(
        HourFiles(H10, (_file("big", 9),)), ("unsorted",), CompactionOptions(max_group_bytes=6)
    )
    assert [len(g.files) for g in big] == [1]
    # Two groups: each names the other's files as siblings.
    two = split_hour(item, ("small-files",), CompactionOptions(max_group_bytes=10))
    assert [[f.path.rsplit("/", 1)[1] for f in g.files] for g in two] == [
        ["unknown.parquet", "early.parquet", "middle.parquet"],
        ["middle2.parquet", "late.parquet"],
    ]
    assert [g.parts for g in two] == [2, 2]
    assert set(two[0].siblings) == set(two[1].files) and set(two[1].siblings) == set(two[0].files)


def test_a_group_reports_its_hour_as_sql_and_as_a_dictionary() -> None:
    files = (
        _file("a", 7, records=3, late=True),
        _file("b", 9, records=4, late=True, compacted=True),
        _file("c", 1, records=1, late=True),
    )
    group = RewriteGroup(
        group_id="2024-03-08T10#2", hour=H10, part=2, parts=3, reasons=("late-data",), files=files
    )
    assert (group.start, group.end) == (H10_START, H10_START + timedelta(hours=1))
    assert group.sql_predicate() == (
        "client_ts >= TIMESTAMP '2024-03-08 10:00:00 UTC' "
        "AND client_ts < TIMESTAMP '2024-03-08 11:00:00 UTC'"
    )
    assert group.sql_predicate("ts").startswith("ts >= TIMESTAMP") and "AND ts < " in (
        group.sql_predicate("ts")
    )
    assert group.to_dict() == {
        "group_id": "2024-03-08T10#2",
        "hour": "2024-03-08T10",
        "start": "2024-03-08T10:00:00+00:00",
        "end": "2024-03-08T11:00:00+00:00",
        "part": 2,
        "parts": 3,
        "reasons": ["late-data"],
        "files": 3,
        "bytes": 17,
        "records": 8,
        "late_files": 2,  # the compacted file is late no more
        "file_paths": [
            "s3://b/t/data/a.parquet",
            "s3://b/t/data/b.parquet",
            "s3://b/t/data/c.parquet",
        ],
    }


def test_a_plan_reports_every_count_as_a_dictionary() -> None:
    a = RewriteGroup("h#1", H10, 1, 2, ("small-files",), (_file("a", 3), _file("b", 4)))
    b = RewriteGroup("h#2", H10, 2, 2, ("small-files",), (_file("c", 5),))
    c = RewriteGroup("i#1", H10 + 1, 1, 1, ("unsorted",), (_file("d", 6, hour=H10 + 1),))
    plan = CompactionPlan(
        table="analytics.events",
        snapshot_id=7,
        planned_at=H10_START,
        options=CompactionOptions(target_file_size=100, max_group_bytes=200, max_commits=2),
        groups=(a, b, c),
        hours_total=5,
        hours_hot=1,
        hours_clean=1,
        skipped=(HourSkip("2024-03-08T13", "why"),),
    )
    assert (plan.files, plan.bytes, plan.hours_selected, plan.max_commits) == (4, 18, 2, 2)
    assert plan.batches() == [(a, b), (c,)]
    assert plan.to_dict() == {
        "table": "analytics.events",
        "snapshot_id": 7,
        "planned_at": "2024-03-08T10:00:00+00:00",
        "target_file_size": 100,
        "max_group_bytes": 200,
        "max_commits": 2,
        "commits_planned": 2,
        "hours_total": 5,
        "hours_hot": 1,
        "hours_clean": 1,
        "hours_selected": 2,
        "groups_planned": 3,
        "files_planned": 4,
        "bytes_planned": 18,
        "groups": [a.to_dict(), b.to_dict(), c.to_dict()],
        "skipped": [{"hour": "2024-03-08T13", "reason": "why"}],
    }
    unresolved = CompactionPlan("t", None, H10_START, CompactionOptions(), (), 0, 0, 0)
    assert unresolved.max_commits == 10 and unresolved.batches() == []


def test_hour_reasons_from_metadata_alone() -> None:
    options = CompactionOptions(target_file_size=100, check_data=False)  # small: under 75
    inventory, table = _inventory(), _table()

    def reasons(*files: DataFileInfo, opts: CompactionOptions = options) -> tuple[str, ...]:
        return hour_reasons(HourFiles(H10, files), opts, inventory, table)

    assert reasons(_file("a", 10, compacted=True), _file("b", 10, compacted=True)) == ()
    assert reasons(_file("lone", 10)) == ()  # one small file alone is not "small files"
    assert reasons(_file("a", 74), _file("b", 100)) == ("small-files",)
    assert reasons(_file("a", 75), _file("b", 100)) == ()  # 75 is not under 75
    # a small compacted file is not fresh: only fresh files count as small
    assert reasons(_file("a", 10, compacted=True), _file("b", 100)) == ()
    assert reasons(_file("a", 100, late=True)) == ("late-data",)
    assert reasons(_file("a", 100, late=True, compacted=True), _file("b", 100)) == ()
    assert reasons(_file("a", 10, late=True), _file("b", 100)) == ("small-files", "late-data")
    # with data checks on, a lone sorted file needs no reading (io None would fail)
    checked = CompactionOptions(target_file_size=100)
    assert reasons(_file("lone", 100), opts=checked) == ()
    no_dedupe = CompactionOptions(target_file_size=100, deduplicate=False)
    assert reasons(_file("a", 100), _file("b", 100), opts=no_dedupe) == ()


def test_the_plan_leaves_hot_clean_unasked_and_merge_on_read_hours(
    caplog: pytest.LogCaptureFixture,
) -> None:
    small = CompactionOptions(target_file_size=100, hot_window=timedelta(minutes=30))
    hours = [
        HourFiles(H10, (_file("a", 10), _file("b", 10))),  # small files
        HourFiles(H10 + 1, (_file("c", 100, hour=H10 + 1),)),  # clean
        HourFiles(H10 + 2, (_file("d", 10, hour=H10 + 2), _file("e", 10, hour=H10 + 2)), 2),
        HourFiles(H10 + 3, (_file("f", 10, hour=H10 + 3), _file("g", 10, hour=H10 + 3))),
        HourFiles(H10 + 4, (_file("h", 10, hour=H10 + 4), _file("i", 10, hour=H10 + 4))),
    ]
    # H10+4 ends at 15:00; with a 30 minute window it is hot until 15:30 (not at 15:30)
    now = H10_START + timedelta(hours=5, minutes=30)
    with caplog.at_level(logging.INFO, logger="maintenance.plan"):
        plan = plan_from_inventory(_inventory(*hours), _table(), small, now=now)
    assert [g.group_id for g in plan.groups] == [
        "2024-03-08T10#1",
        "2024-03-08T13#1",
        "2024-03-08T14#1",
    ]
    assert (plan.hours_total, plan.hours_hot, plan.hours_clean) == (5, 0, 1)
    assert plan.skipped == (
        HourSkip("2024-03-08T12", "2 delete files (merge-on-read) not supported"),
    )
    assert (plan.table, plan.snapshot_id, plan.planned_at) == ("analytics.events", 42, now)
    assert plan.options.max_commits == 10  # resolved from the (empty) table properties
    assert plan.metadata_location == "s3://b/t/metadata/v1.metadata.json"
    assert [r.getMessage() for r in caplog.records if r.name == "maintenance.plan"] == [
        "planned 3 groups (6 files, 60 bytes) over 3 hours of analytics.events"
    ]
    earlier = now - timedelta(microseconds=1)
    hot = plan_from_inventory(_inventory(*hours), _table(), small, now=earlier)
    assert [g.hour for g in hot.groups] == [H10, H10 + 3] and hot.hours_hot == 1
    only = plan_from_inventory(_inventory(*hours), _table(), small, now=now, hours={H10 + 3})
    assert [g.hour for g in only.groups] == [H10 + 3]
    assert (only.hours_total, only.hours_hot, only.hours_clean, only.skipped) == (5, 0, 0, ())


def test_hot_and_clean_hours_are_each_counted() -> None:
    options = CompactionOptions(target_file_size=100, hot_window=timedelta(minutes=30))
    hours = [HourFiles(H10 + i, (_file(f"c{i}", 100, hour=H10 + i),)) for i in range(4)]
    # at 13:00 the hours of 10:00 and 11:00 are closed (clean), 12:00 and 13:00 still hot
    now = H10_START + timedelta(hours=3)
    plan = plan_from_inventory(_inventory(*hours), _table(), options, now=now)
    assert (plan.hours_total, plan.hours_hot, plan.hours_clean, plan.groups) == (4, 2, 2, ())


def test_plan_compaction_of_a_table_keeps_to_the_hours_asked(sqlite_events: Any) -> None:
    rng = random.Random(4)
    for hour in (0, 1):
        for batch in range(2):  # two small files in each hour
            append(sqlite_events, sort_rows(make_rows(rng, 5, hour_start(hour), f"{hour}{batch}")))
    sqlite_events.refresh()
    ordinals = [int(hour_start(h).timestamp()) // 3600 for h in (0, 1)]
    every = plan_compaction(sqlite_events)
    assert sorted(g.hour for g in every.groups) == ordinals
    asked = plan_compaction(sqlite_events, hours={ordinals[1]})
    assert [g.hour for g in asked.groups] == [ordinals[1]]
    assert [len(g.files) for g in asked.groups] == [2]
