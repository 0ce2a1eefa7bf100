"""A compaction run commits its groups in few snapshots, with partial progress.

Real Parquet files on a SQLite catalog. The oracle is the rows the test generated (one
per event_id, the earliest server_ts winning) and a pyarrow read of every live file
before the run, never the compaction code.
"""

from __future__ import annotations

import importlib
import json
import random
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from pyiceberg.table import Table
from pyiceberg.table.snapshots import Operation, Snapshot

from catalog.commit import CommitConflictError, Conflict
from lakehouse import summary
from lakehouse.datafiles import write_hour_file
from lakehouse.settings import Settings
from maintenance import CompactionOptions, compact, plan_compaction
from maintenance.paths import canonical
from maintenance.plan import MAX_COMMITS_PROPERTY
from tests.maintenance.assertions import live_files
from tests.maintenance.builders import (
    ARROW_SCHEMA,
    BASE,
    Fed,
    label,
    make_rows,
    multiset,
    sort_rows,
    table_rows,
)

EPOCH_HOUR = int(BASE.timestamp()) // 3600
# the module, not the function of the same name that the package exports
compact_module = importlib.import_module("maintenance.compact")


def feed_hours(
    table: Table, hours: int, *, files_per_hour: int = 2, rows: int = 6, resend_hours: int = 3
) -> Fed:
    """``files_per_hour`` small sorted files in each of ``hours`` hours, written straight
    to Parquet and added in one append (fast); the first ``resend_hours`` hours get one
    more file resending some of their events with a later server_ts (duplicates)."""
    rng = random.Random(hours)
    fed = Fed(hours=[BASE + timedelta(hours=h) for h in range(hours)])
    files = []
    for h, start in enumerate(fed.hours):
        batches = [make_rows(rng, rows, start, f"h{h}f{f}") for f in range(files_per_hour)]
        if h < resend_hours:
            picked = rng.sample(batches[0], 3)
            batches.append(
                [{**r, "server_ts": r["server_ts"] + timedelta(seconds=30)} for r in picked]
            )  # type: ignore[operator]
        for batch in batches:
            fed.rows += batch
            rows_table = pa.Table.from_pylist(sort_rows(batch), schema=ARROW_SCHEMA)
            name = f"00000-{len(files)}-{uuid.uuid4()}.parquet"
            files.append(
                write_hour_file(
                    table.metadata, table.io, rows_table, hour=EPOCH_HOUR + h, name=name
                )
            )
    with (
        table.transaction() as tx,
        tx.update_snapshot(
            snapshot_properties={summary.KIND: summary.KIND_ON_TIME}
        ).fast_append() as fa,
    ):
        for data_file in files:
            fa.append_data_file(data_file)
    table.refresh()
    return fed


def pyarrow_rows(table: Table) -> Counter[tuple[object, ...]]:
    """Every live row, read with pyarrow from the files the current snapshot lists."""
    paths = [canonical(path) for path, *_ in live_files(table)]
    read = pa.concat_tables([pq.read_table(p, schema=ARROW_SCHEMA) for p in paths])
    return multiset(read.to_pylist())


def compactions(table: Table, since: int) -> list[Snapshot]:
    """Compaction snapshots committed after the first ``since`` snapshots."""
    table.refresh()
    return [
        s
        for s in table.snapshots()[since:]
        if s.summary and s.summary.get(summary.KIND) == summary.KIND_COMPACTION
    ]


def hours_named(snapshots: list[Snapshot]) -> list[str]:
    return [h for s in snapshots for h in s.summary[summary.COMPACTED_HOURS].split(",")]


def assert_one_file_per_hour_and_exact_rows(table: Table, fed: Fed, hours: int) -> None:
    table.refresh()
    per_hour = Counter(hour for _, hour, _, _ in live_files(table))
    assert sorted(per_hour) == [EPOCH_HOUR + h for h in range(hours)]
    assert set(per_hour.values()) == {1}
    expected = multiset(fed.expected())
    assert multiset(table_rows(table)) == expected  # nothing lost, nothing doubled
    assert pyarrow_rows(table) == expected


@pytest.mark.parametrize(("max_commits", "how"), [(10, "default"), (3, "property"), (3, "option")])
def test_a_run_over_200_hour_groups_commits_at_most_max_commits_snapshots(
    sqlite_events: Table, max_commits: int, how: str
) -> None:
    table = sqlite_events
    fed = feed_hours(table, 200)
    before = pyarrow_rows(table)
    assert sum(before.values()) == len(fed.rows)  # the pyarrow oracle sees what was fed
    if how == "property":
        with table.transaction() as tx:
            tx.set_properties({MAX_COMMITS_PROPERTY: str(max_commits)})
    options = CompactionOptions(max_commits=max_commits) if how == "option" else None
    start = len(table.snapshots())
    plan = plan_compaction(table, options)
    assert len(plan.groups) == 200 and plan.max_commits == max_commits
    result = compact(table, options)
    assert result.groups_committed == 200 and result.groups_failed == result.groups_skipped == 0
    made = compactions(table, start)
    assert len(made) == result.commits == max_commits
    assert len(table.snapshots()) - start == max_commits  # nothing else was committed
    # Every hour named once, in the summary of the commit that rewrote it.
    named = hours_named(made)
    assert sorted(named) == sorted(label(h) for h in fed.hours) and len(set(named)) == 200
    # Replace where no duplicate was dropped (totals unchanged), overwrite where one was.
    dropped = {label(h): 3 for h in fed.hours[:3]}
    for snap in made:
        s = snap.summary
        hours = set(s[summary.COMPACTED_HOURS].split(","))
        mine = {h: n for h, n in dropped.items() if h in hours}
        assert int(s[summary.DUPLICATES_REMOVED]) == sum(mine.values())
        if mine:
            assert s.operation == Operation.OVERWRITE
            listed = dict(item.split(":") for item in s[summary.DUPLICATE_HOURS].split(","))
            assert {h: int(n) for h, n in listed.items()} == mine
            assert int(s["deleted-records"]) - int(s["added-records"]) == sum(mine.values())
        else:
            assert s.operation == Operation.REPLACE
            assert s["added-records"] == s["deleted-records"]
            assert s.get(summary.DUPLICATE_HOURS) is None
    assert result.replace_commits + result.overwrite_commits == max_commits
    assert result.duplicates_removed == fed.duplicates == 9
    assert_one_file_per_hour_and_exact_rows(table, fed, 200)


def test_max_commits_on_the_command_line(sqlite_settings: Settings, sqlite_events: Table) -> None:
    from lakehouse.cli.main import cli

    table = sqlite_events
    fed = feed_hours(table, 12, resend_hours=0)
    start = len(table.snapshots())
    runner = CliRunner()
    shown = runner.invoke(cli, ["maintain", "plan", "--json", "--max-commits", "4"])
    assert shown.exit_code == 0, shown.output
    plan = json.loads(shown.stdout)
    assert plan["groups_planned"] == 12 and plan["commits_planned"] == 4
    done = runner.invoke(cli, ["maintain", "run", "--json", "--max-commits", "4", "--no-lease"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["compaction"]["commits"] == 4
    assert len(compactions(table, start)) == 4
    assert_one_file_per_hour_and_exact_rows(table, fed, 12)


def _commit_spy(
    monkeypatch: pytest.MonkeyPatch, interfere: Callable[[int, list[Any]], None]
) -> list[int]:
    """Wrap the commit step of compaction: ``interfere(n, removed)`` runs just before the
    n-th commit (1-based), after planning, rewriting and the per-group check."""
    real = compact_module.commit_rewrite
    calls: list[int] = []
    inside: list[bool] = []

    def spy(table: Table, removed: Any, added: Any, **kw: Any) -> Any:
        if inside:  # a rival compaction run by ``interfere`` commits for real
            return real(table, removed, added, **kw)
        calls.append(len(calls) + 1)
        removed = list(removed)
        inside.append(True)
        try:
            interfere(len(calls), removed)
        finally:
            inside.clear()
        return real(table, removed, added, **kw)

    monkeypatch.setattr(compact_module, "commit_rewrite", spy)
    return calls


def test_a_commit_lost_to_a_concurrent_compactor_keeps_the_other_commits(
    sqlite_events: Table, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = sqlite_events
    fed = feed_hours(table, 40)
    before = pyarrow_rows(table)
    start = len(table.snapshots())
    rival_hour: list[int] = []

    def rival_compacts_an_hour_of_the_second_batch(n: int, removed: list[Any]) -> None:
        if n != 2:
            return
        hour = int(removed[0].partition[0])
        rival_hour.append(hour)
        other = table.catalog.load_table(table.name())
        rival = compact(other, plan=plan_compaction(other, hours={hour}))
        assert rival.groups_committed == 1

    calls = _commit_spy(monkeypatch, rival_compacts_an_hour_of_the_second_batch)
    result = compact(table, CompactionOptions(max_commits=4), run_id="run-a")
    # Batch 2 (10 hours) lost as a whole; its 9 hours the rival left were re-planned and
    # committed once more; batches 1, 3 and 4 stayed committed.
    assert calls == [1, 2, 3, 4, 5]
    assert result.groups_failed == 0 and result.groups_skipped == 0
    assert result.groups_committed == 39 and result.commits == 4
    made = compactions(table, start)
    ours = [s for s in made if s.summary[summary.MAINTENANCE_RUN] == "run-a"]
    theirs = [s for s in made if s.summary[summary.MAINTENANCE_RUN] != "run-a"]
    assert len(ours) == 4 and len(theirs) == 1
    assert hours_named(theirs) == [label(BASE + timedelta(hours=rival_hour[0] - EPOCH_HOUR))]
    named = hours_named(made)
    assert sorted(named) == sorted(label(h) for h in fed.hours)  # each hour exactly once
    assert_one_file_per_hour_and_exact_rows(table, fed, 40)
    assert set(pyarrow_rows(table)) <= set(before)


def test_a_concurrent_writer_append_during_a_commit_is_kept(
    sqlite_events: Table, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = sqlite_events
    fed = feed_hours(table, 30)
    late = sort_rows(make_rows(random.Random(5), 7, fed.hours[12], "racing"))

    def writer_appends_into_the_batch_being_committed(n: int, removed: list[Any]) -> None:
        if n == 2:
            other = table.catalog.load_table(table.name())
            other.append(
                pa.Table.from_pylist(late, schema=ARROW_SCHEMA),
                snapshot_properties={summary.KIND: summary.KIND_LATE, summary.LATE: "true"},
            )

    _commit_spy(monkeypatch, writer_appends_into_the_batch_being_committed)
    result = compact(table, CompactionOptions(max_commits=3))
    assert result.groups_committed == 30 and result.commits == 3 and result.groups_skipped == 0
    fed.rows += late
    table.refresh()
    assert multiset(table_rows(table)) == multiset(fed.expected())  # the append is there
    compact(table)  # the raced late file is merged by the next run
    assert_one_file_per_hour_and_exact_rows(table, fed, 30)


def test_a_failed_commit_loses_only_its_own_groups(
    sqlite_events: Table, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = sqlite_events
    fed = feed_hours(table, 20)
    before = pyarrow_rows(table)
    files_before = {canonical(p) for p, *_ in live_files(table)}
    on_disk_before = {str(p) for p in _data_files_on_disk(table)}

    def catalog_refuses_the_second(n: int, removed: list[Any]) -> None:
        if n == 2:
            raise CommitConflictError("refused", attempts=6, conflict=Conflict.LOST_RACE)

    _commit_spy(monkeypatch, catalog_refuses_the_second)
    start = len(table.snapshots())
    result = compact(table, CompactionOptions(max_commits=4))
    assert result.commits == 3 and result.groups_committed == 15
    assert result.groups_failed == 5 and result.groups_skipped == 0
    failed_hours = {f.hour for f in result.failures}
    assert len(failed_hours) == 5
    assert len(compactions(table, start)) == 3
    table.refresh()
    assert pyarrow_rows(table) == multiset(fed.expected())
    # The failed batch's hours still hold their original files; its outputs were removed.
    per_hour = Counter(
        label(BASE + timedelta(hours=h - EPOCH_HOUR)) for _, h, _, _ in live_files(table)
    )
    assert all(per_hour[h] >= 2 for h in failed_hours)
    assert all(n == 1 for h, n in per_hour.items() if h not in failed_hours)
    referenced = {canonical(p) for p, *_ in live_files(table)}
    leftover = {p for p in map(str, _data_files_on_disk(table)) if p not in on_disk_before}
    assert leftover <= referenced  # no output of the failed commit left behind
    assert files_before & referenced  # some originals are still live
    assert set(before) >= set(pyarrow_rows(table))
    monkeypatch.undo()
    assert compact(table).groups_committed == 5  # the next run finishes the work
    assert_one_file_per_hour_and_exact_rows(table, fed, 20)


def _data_files_on_disk(table: Table) -> list[Any]:
    from pathlib import Path

    return [p for p in Path(canonical(table.location())).rglob("*.parquet") if "/data/" in str(p)]
