"""Snapshot expiry with file cleanup, on both catalogs: exactly the unreferenced files go,
and every retained snapshot still reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pyiceberg.table import Table

from maintenance import compact, expire_snapshots, snapshots_to_expire
from tests.maintenance.builders import Fed, multiset, table_rows
from tests.support.reachable import files_under, local, reachable


def files_on_disk(table: Table) -> set[str]:
    return {str(p) for p in Path(local(table.location())).rglob("*") if p.is_file()}


def referenced(table: Table) -> set[str]:
    """Every file the table's metadata references, by an independent walk
    (tests/support/reachable.py: metadata JSON and Avro read directly, no project code)."""
    return reachable(table.metadata_location).all


def test_expiry_deletes_exactly_the_unreferenced_files(fed: tuple[Table, Fed]) -> None:
    table, data = fed
    compact(table)
    table.refresh()
    before_disk = files_on_disk(table)
    oracle_before = reachable(table.metadata_location)
    before_refs = oracle_before.all
    before_location = local(table.metadata_location)
    assert before_refs <= before_disk
    snapshots = table.metadata.snapshots
    keep = 3
    cutoff_ms = snapshots[-keep].timestamp_ms  # expire everything older than the 3rd newest
    rows_by_snapshot = {
        s.snapshot_id: multiset(table_rows(table, s.snapshot_id)) for s in snapshots[-keep:]
    }
    now = datetime.fromtimestamp(cutoff_ms / 1000, UTC)
    result = expire_snapshots(table, retention=timedelta(0), retain_last=1, now=now)
    table.refresh()
    retained = {s.snapshot_id for s in table.metadata.snapshots}
    assert retained == {s.snapshot_id for s in snapshots if s.timestamp_ms >= cutoff_ms}
    assert result.snapshots_expired == len(snapshots) - len(retained)
    after_disk = files_on_disk(table)
    after_refs = referenced(table)
    deleted = before_disk - after_disk
    # Exactly: what was referenced before and is not any more (metadata files aside).
    data_and_manifests = {p for p in deleted if not p.endswith(".metadata.json")}
    assert data_and_manifests == {
        p for p in before_refs - after_refs if not p.endswith(".metadata.json")
    }
    assert after_refs <= after_disk  # nothing still referenced was deleted
    # Every kind went: expired manifest lists, manifests and data files alike.
    oracle_after = reachable(table.metadata_location)
    for kind in ("manifest_lists", "manifests", "data_files"):
        gone = getattr(oracle_before, kind) - getattr(oracle_after, kind)
        assert gone and gone <= deleted, kind
    assert not files_under(table.location()) & (before_refs - after_refs - {before_location})
    assert result.files_deleted == len(deleted)
    assert result.data_files_deleted == sum(1 for p in deleted if p.endswith(".parquet"))
    # Time travel to every retained snapshot still reads, with the same rows.
    for snapshot_id, rows in rows_by_snapshot.items():
        if snapshot_id in retained:
            assert multiset(table_rows(table, snapshot_id)) == rows
    assert multiset(table_rows(table)) == multiset(data.expected())


def test_retain_last_and_tags_protect_old_snapshots(sqlite_fed: tuple[Table, Fed]) -> None:
    table, _ = sqlite_fed
    snapshots = table.metadata.snapshots
    tagged = snapshots[2].snapshot_id
    table.manage_snapshots().create_tag(tagged, "audit").commit()
    far_future = datetime.now(UTC) + timedelta(days=1)
    doomed = snapshots_to_expire(table.metadata, older_than=far_future, retain_last=4)
    assert tagged not in doomed
    assert not doomed & {s.snapshot_id for s in snapshots[-4:]}
    rows_tagged = multiset(table_rows(table, tagged))
    result = expire_snapshots(table, retention=timedelta(0), retain_last=4, now=far_future)
    table.refresh()
    assert {s.snapshot_id for s in table.metadata.snapshots} == {tagged} | {
        s.snapshot_id for s in snapshots[-4:]
    }
    assert result.snapshots_expired == len(snapshots) - 5
    assert multiset(table_rows(table, tagged)) == rows_tagged
    with pytest.raises(Exception, match="retain_last"):
        snapshots_to_expire(table.metadata, older_than=far_future, retain_last=0)


def test_dry_run_and_retention_window_change_nothing(sqlite_fed: tuple[Table, Fed]) -> None:
    table, _ = sqlite_fed
    compact(table)
    table.refresh()
    disk, location = files_on_disk(table), table.metadata_location
    deleted: list[str] = []
    young = expire_snapshots(table, delete=deleted.append)  # default 5 days: all are young
    assert young.snapshots_expired == 0 and young.files_deleted == 0
    dry = expire_snapshots(table, retention=timedelta(0), dry_run=True, delete=deleted.append)
    assert dry.dry_run and dry.snapshots_expired == len(table.metadata.snapshots) - 1
    assert dry.files_deleted == len(dry.deleted_paths) > 0
    assert deleted == []
    table.refresh()
    assert files_on_disk(table) == disk and table.metadata_location == location
    real = expire_snapshots(table, retention=timedelta(0))
    assert (real.snapshots_expired, real.files_deleted) == (
        dry.snapshots_expired,
        dry.files_deleted,
    )


def test_injectable_delete_and_failures_are_counted(sqlite_fed: tuple[Table, Fed]) -> None:
    table, data = sqlite_fed
    compact(table)
    calls: list[str] = []

    def flaky(location: str) -> None:
        calls.append(location)
        if location.endswith(".avro") and len(calls) % 2 == 0:
            raise PermissionError("denied")
        table.io.delete(location)

    result = expire_snapshots(table, retention=timedelta(0), delete=flaky)
    assert result.delete_failures > 0
    assert result.files_deleted + result.delete_failures == len(calls)
    assert multiset(table_rows(table)) == multiset(data.expected())
