"""Manifest rewriting keeps the manifest count low without changing data or lineage."""

from __future__ import annotations

import itertools
import random
import threading
from datetime import UTC, datetime

from pyiceberg.table import Table
from pyiceberg.table.snapshots import Operation

from catalog import open_catalog, producers
from lakehouse.settings import Settings
from maintenance import compact, plan_compaction, rewrite_manifests
from maintenance.manifests import manifest_counts
from tests.maintenance.builders import Fed, append, make_rows, multiset, sort_rows, table_rows


def test_rewrite_merges_manifests_and_keeps_data_and_lineage(fed: tuple[Table, Fed]) -> None:
    table, data = fed
    before, _ = manifest_counts(table)
    assert before > 2
    rows = multiset(table_rows(table))
    total = table.current_snapshot().summary["total-records"]
    reasons = [g.reasons for g in plan_compaction(table).groups]
    result = rewrite_manifests(table, max_manifests=1)
    assert result.rewritten and result.manifests_before == before and result.manifests_after == 1
    table.refresh()
    snapshot = table.current_snapshot()
    assert snapshot.summary.operation == Operation.REPLACE
    assert snapshot.summary["total-records"] == total
    assert multiset(table_rows(table)) == rows
    # Entries keep the snapshot that added them: late data is still seen as late.
    assert [g.reasons for g in plan_compaction(table).groups] == reasons
    compact(table)
    assert manifest_counts(table)[1] > 0  # rewrites leave manifests that list no live file
    again = rewrite_manifests(table)
    assert again.rewritten and manifest_counts(table) == (1, 0)
    assert multiset(table_rows(table)) == multiset(data.expected())
    assert not rewrite_manifests(table).rewritten  # nothing to do: no commit
    assert rewrite_manifests(table, dry_run=True).manifests_after == 1


def test_rewrite_keeps_concurrent_appends(
    sqlite_settings: Settings, sqlite_fed: tuple[Table, Fed]
) -> None:
    table, data = sqlite_fed
    stop = threading.Event()
    written: list[dict[str, object]] = []

    def writer() -> None:
        handle = open_catalog(sqlite_settings).load_table(sqlite_settings.table.identifier)
        rng = random.Random(4)
        n = 0
        while not stop.is_set() or n < 2:
            rows = sort_rows(make_rows(rng, 3, datetime(2024, 5, 1, 1, tzinfo=UTC), f"m{n}"))
            append(handle, rows)
            written.extend(rows)
            n += 1
            stop.wait(0.1)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for _ in range(3):
            rewrite_manifests(
                open_catalog(sqlite_settings).load_table(sqlite_settings.table.identifier),
                max_manifests=1,
            )
    finally:
        stop.set()
        thread.join()
    table.refresh()
    assert multiset(table_rows(table)) == multiset(data.rows + written)


def test_a_rewrite_that_loses_a_race_is_planned_again(
    fed: tuple[Table, Fed], settings: Settings, monkeypatch
) -> None:
    """A writer commits between the rewrite's planning and its commit: the rewrite is
    planned again on the new head, and the writer's rows are kept."""
    table, _ = fed
    other = open_catalog(settings).load_table(table.name())
    # no retries inside pyiceberg: the lost race reaches the rewrite (as after ten lost
    # retries against busy writers)
    other.transaction().set_properties({"commit.retry.num-retries": "0"}).commit_transaction()
    table.refresh()
    rows = multiset(table_rows(table))
    extra = make_rows(random.Random(5), 7, datetime(2024, 5, 1, 3, tzinfo=UTC), "race")
    transactions = []
    original = producers.begin

    def racing_transaction(handle):
        txn = original(handle)
        if not transactions:
            append(other, extra)  # lands after the rewrite read its base
        transactions.append(txn)
        return txn

    monkeypatch.setattr(producers, "begin", racing_transaction)
    result = rewrite_manifests(table, max_manifests=1)
    assert result.rewritten and len(transactions) == 2
    table.refresh()
    assert table.current_snapshot().summary["lakehouse.kind"] == "manifest-rewrite"
    assert multiset(table_rows(table)) == rows + multiset(extra)


def test_a_big_table_keeps_its_full_manifests(fed: tuple[Table, Fed]) -> None:
    """A table whose manifests outgrow one target size is written as several full
    manifests, each over a range of hours; a later run leaves them alone unless more than
    ``max_manifests`` others come beside them."""
    table, _ = fed
    with table.transaction() as txn:  # a small target: this table needs several manifests
        txn.set_properties({"commit.manifest.target-size-bytes": "8000"})
    table.refresh()
    rows = multiset(table_rows(table))
    first = rewrite_manifests(table, max_manifests=1)
    assert first.rewritten and first.manifests_after >= 3, first
    full = first.manifests_after
    first_paths = {m.manifest_path for m in table.current_snapshot().manifests(table.io)}
    lengths = sorted(m.manifest_length for m in table.current_snapshot().manifests(table.io))
    # about the target size each (a manifest of a few files is mostly its ~4.7 KB header)
    assert all(n <= 8000 * 1.25 for n in lengths) and all(n >= 4000 for n in lengths[1:])
    assert multiset(table_rows(table)) == rows
    # each manifest holds a range of hours, and the ranges follow one another
    spans = []
    for m in table.current_snapshot().manifests(table.io):
        hours = [e.data_file.partition[0] for e in m.fetch_manifest_entry(table.io)]
        spans.append((min(hours), max(hours)))
    spans.sort()
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans)), spans

    assert not rewrite_manifests(table, max_manifests=2).rewritten  # only the full ones
    rng = random.Random(5)
    added: list[dict[str, object]] = []
    for k in range(3):  # three small appends beside them
        batch = sort_rows(make_rows(rng, 5, datetime(2024, 6, 1, k, tzinfo=UTC), f"x{k}-"))
        append(table, batch)
        added += batch
    count, _ = manifest_counts(table)
    assert count == full + 3
    assert not rewrite_manifests(table, max_manifests=4).rewritten
    listed = table.current_snapshot().manifests(table.io)
    appended = {m.manifest_path for m in listed if m.manifest_path not in first_paths}
    assert len(appended) == 3
    again = rewrite_manifests(table, max_manifests=2)
    assert again.rewritten and again.manifests_before == full + 3
    assert multiset(table_rows(table)) == rows + multiset(added)
    # the small ones were merged; the full ones (all but perhaps the last of the first
    # rewrite, which holds what was left over) are the same files as before
    after = {m.manifest_path for m in table.current_snapshot().manifests(table.io)}
    assert not appended & after
    assert len(first_paths & after) >= full - 1, (first_paths, after)
    assert again.manifests_rewritten <= 4
