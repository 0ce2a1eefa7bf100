"""Compaction racing writers, readers and another compactor, on both catalogs."""

from __future__ import annotations

import itertools
import random
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from pyiceberg.table import Table

from catalog import open_catalog
from lakehouse.settings import Settings
from maintenance import CompactionResult, compact, plan_compaction
from tests.maintenance.assertions import assert_compacted
from tests.maintenance.builders import Fed, append, make_rows, multiset, sort_rows, table_rows


def _handle(settings: Settings) -> Table:
    """Each thread gets its own catalog connection and table handle."""
    return open_catalog(settings).load_table(settings.table.identifier)


def _in_thread(target: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    out: list[object] = []

    def run() -> None:
        try:
            out.append(target())
        except BaseException as exc:  # surfaced by the test
            out.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, out


def test_appends_committed_while_compaction_runs_are_kept(
    settings: Settings, fed: tuple[Table, Fed]
) -> None:
    table, data = fed
    stop = threading.Event()
    written: list[dict[str, object]] = []

    def writer() -> int:
        handle = _handle(settings)
        rng = random.Random(11)
        n = 0
        while not stop.is_set() or n < 3:
            hour = datetime(2024, 5, 1, n % 3, tzinfo=UTC)  # the very hours being compacted
            rows = sort_rows(make_rows(rng, 5, hour, f"w{n}", server_delay=timedelta(hours=2)))
            append(handle, rows, late=True)
            written.extend(rows)
            n += 1
            # A busy writer commits a few times a second. (One that commits back to back
            # can starve any optimistic committer slower than itself: compaction would
            # report the group failed, keep every row, and retry on the next run.)
            stop.wait(0.2)
        return n

    thread, out = _in_thread(writer)
    try:
        result = compact(_handle(settings))
    finally:
        stop.set()
        thread.join()
    assert isinstance(out[0], int) and out[0] >= 3
    assert isinstance(result, CompactionResult) and result.groups_failed == 0
    table.refresh()
    present = multiset(table_rows(table))
    for row, count in multiset(written).items():
        assert present[row] == count, row  # every concurrent append is there
    data.rows += written
    compact(table)  # the late files that raced are compacted by the next run
    assert_compacted(table, data)


def test_two_compactors_at_once_lose_and_duplicate_nothing(
    settings: Settings, fed: tuple[Table, Fed]
) -> None:
    table, data = fed
    start = threading.Barrier(2)

    def compactor() -> CompactionResult:
        handle = _handle(settings)
        start.wait()
        return compact(handle)

    threads = [_in_thread(compactor) for _ in range(2)]
    for thread, _ in threads:
        thread.join()
    results = [out[0] for _, out in threads]
    assert all(isinstance(r, CompactionResult) for r in results), results
    assert sum(r.groups_failed for r in results) == 0  # type: ignore[union-attr]
    assert_compacted(table, data)
    # Every hour was committed by exactly one of them.
    table.refresh()
    compactions = [s for s in table.snapshots() if s.summary.get("lakehouse.kind") == "compaction"]
    hours = [h for s in compactions for h in s.summary["lakehouse.compacted-hours"].split(",")]
    assert sorted(hours) == sorted(set(hours)) and len(hours) == 3


def test_a_stale_plan_is_skipped_or_replanned_not_applied_twice(
    sqlite_fed: tuple[Table, Fed],
) -> None:
    table, data = sqlite_fed
    stale = plan_compaction(table)
    first = compact(table)
    second = compact(table, plan=stale)
    assert first.groups_committed == 3
    # Every stale group lost validation; re-planning found the hours clean.
    assert second.groups_committed == 0 and second.groups_failed == 0
    assert_compacted(table, data)


def test_a_reader_never_sees_totals_jump_up(settings: Settings, fed: tuple[Table, Fed]) -> None:
    table, data = fed
    unique = len(data.expected())
    done = threading.Event()
    seen: list[tuple[int, int]] = []

    def reader() -> None:
        handle = _handle(settings)
        while not done.is_set():
            handle.refresh()
            ids = handle.scan(selected_fields=("event_id",)).to_arrow()["event_id"]
            seen.append((len(ids), len(set(ids.to_pylist()))))

    thread, _ = _in_thread(reader)
    try:
        compact(_handle(settings), before_commit=lambda group: threading.Event().wait(0.05))
    finally:
        done.set()
        thread.join()
    assert len(seen) >= 2
    totals = [total for total, _ in seen]
    assert totals[0] <= len(data.rows)
    assert all(later <= earlier for earlier, later in itertools.pairwise(totals)), totals
    assert all(distinct == unique for _, distinct in seen)  # nothing lost, ever
    assert_compacted(table, data)


def test_two_maintenance_processes_without_lease(
    sqlite_settings: Settings, sqlite_fed: tuple[Table, Fed]
) -> None:
    table, data = sqlite_fed
    cmd = [sys.executable, "-m", "lakehouse.cli.main", "maintain", "run", "--no-lease", "--json"]
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    for proc, (_, err) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, err
    assert_compacted(table, data)
