"""Snapshot expiry, count by count: which snapshots each kind of ref protects, what each
count of the result holds (checked against the metadata read without project code,
tests/support/reachable.py), the order the kinds of files go in, and how little of the
retained history is read."""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pyiceberg.expressions import LessThan
from pyiceberg.table import Table

from lakehouse import faults
from lakehouse.errors import UsageError
from maintenance import compact, expire_snapshots, snapshots_to_expire
from tests.maintenance.builders import append, hour_start, make_rows, multiset, table_rows
from tests.support.reachable import files_under, local, reachable

FAR_FUTURE = datetime.now(UTC) + timedelta(days=1)


def _history(table: Table, appends: int, *, versions_kept: int | None = None) -> list[int]:
    """``appends`` small appends into two hours; the snapshot ids, oldest first. With
    ``versions_kept``, the metadata log keeps that many and the commits delete none."""
    if versions_kept is not None:
        with table.transaction() as tx:
            tx.set_properties(
                {
                    "write.metadata.previous-versions-max": str(versions_kept),
                    "write.metadata.delete-after-commit.enabled": "false",
                }
            )
    rng = random.Random(appends)
    for i in range(appends):
        append(table, make_rows(rng, 3, hour_start(i % 2), f"r{i}"))
    table.refresh()
    return [s.snapshot_id for s in table.metadata.snapshots]


def _metadata_json(table: Table) -> set[str]:
    return {p for p in files_under(table.location()) if p.endswith(".metadata.json")}


def test_each_ref_protects_its_own_snapshots(sqlite_events: Table) -> None:
    table = sqlite_events
    ids = _history(table, 7)
    manage = table.manage_snapshots()
    manage.create_tag(ids[0], "first").create_tag(ids[1], "second")
    manage.create_branch(ids[4], "audit", min_snapshots_to_keep=2).commit()
    table.refresh()
    # main keeps its head; the tags their snapshot; the branch its head and one parent.
    doomed = snapshots_to_expire(table.metadata, older_than=FAR_FUTURE, retain_last=1)
    assert doomed == {ids[2], ids[5]}
    # retain_last counts along every branch: 2 keeps ids[5] on main and still two on audit
    doomed = snapshots_to_expire(table.metadata, older_than=FAR_FUTURE, retain_last=2)
    assert doomed == {ids[2]}
    # a snapshot exactly as old as the cutoff is not older than it
    third_ms = table.metadata.snapshot_by_id(ids[2]).timestamp_ms  # type: ignore[union-attr]
    at_third = datetime.fromtimestamp(third_ms / 1000, UTC)
    assert snapshots_to_expire(table.metadata, older_than=at_third, retain_last=1) == set()
    just_after = at_third + timedelta(milliseconds=1)
    assert snapshots_to_expire(table.metadata, older_than=just_after, retain_last=1) == {ids[2]}


def test_retain_last_under_one_is_refused_with_the_reason(sqlite_events: Table) -> None:
    with pytest.raises(UsageError) as caught:
        snapshots_to_expire(sqlite_events.metadata, older_than=FAR_FUTURE, retain_last=0)
    assert str(caught.value) == (
        "retain_last must be at least 1 (the current snapshot is always kept)"
    )


def test_every_count_is_the_files_that_left_the_disk(sqlite_events: Table) -> None:
    table = sqlite_events
    _history(table, 6, versions_kept=3)
    compact(table)  # the appended files lose their last reference in the newest snapshots
    table.refresh()
    snapshots = table.metadata.snapshots
    keep = 2
    cutoff = datetime.fromtimestamp(snapshots[-keep].timestamp_ms / 1000, UTC)
    expected_ids = tuple(sorted(s.snapshot_id for s in snapshots[:-keep]))
    before = reachable(table.metadata_location)
    rows = multiset(table_rows(table))
    disk_before = files_under(table.location())
    dry = expire_snapshots(table, retention=timedelta(0), now=cutoff, dry_run=True)
    assert files_under(table.location()) == disk_before
    assert dry.dry_run is True and dry.delete_failures == 0
    result = expire_snapshots(table, retention=timedelta(0), now=cutoff)
    table.refresh()
    after = reachable(table.metadata_location)
    gone = disk_before - files_under(table.location())
    assert result.expired_snapshot_ids == dry.expired_snapshot_ids == expected_ids
    assert result.snapshots_expired == len(expected_ids)
    assert result.data_files_deleted == len(before.data_files - after.data_files) > 0
    assert result.manifests_deleted == len(before.manifests - after.manifests) > 0
    assert result.manifest_lists_deleted == len(before.manifest_lists - after.manifest_lists) > 0
    # Metadata files the log no longer lists are older than all it lists: they go.
    assert len(_metadata_json(table)) < len(
        [p for p in disk_before if p.endswith(".metadata.json")]
    )
    assert _metadata_json(table) == after.metadata_files
    old_metadata = {p for p in gone if p.endswith(".metadata.json")}
    assert result.metadata_files_deleted == len(old_metadata) > 0
    assert result.files_deleted == len(gone) and result.delete_failures == 0
    assert not result.dry_run and result.deleted_paths == ()
    # The dry run named those files: data first, then manifests, lists, metadata (the
    # real run's own commit pushed one more metadata file out of the log).
    named = {local(p) for p in dry.deleted_paths}
    assert {p for p in named if not p.endswith(".json")} == gone - old_metadata
    assert {p for p in named if p.endswith(".json")} < old_metadata
    kinds = [
        0 if p.endswith(".parquet") else 3 if p.endswith(".json") else 2 if "/snap-" in p else 1
        for p in dry.deleted_paths
    ]
    assert kinds == sorted(kinds)
    metadata_part = [p for p in dry.deleted_paths if p.endswith(".json")]
    assert metadata_part == sorted(metadata_part)
    assert dry.metadata_files_deleted == len(metadata_part) > 0
    assert dry.files_deleted == len(dry.deleted_paths)
    assert (dry.data_files_deleted, dry.manifests_deleted, dry.manifest_lists_deleted) == (
        result.data_files_deleted,
        result.manifests_deleted,
        result.manifest_lists_deleted,
    )
    assert after.all <= files_under(table.location())
    assert multiset(table_rows(table)) == rows


def test_a_tagged_old_snapshot_keeps_the_files_it_reads(sqlite_events: Table) -> None:
    table = sqlite_events
    ids = _history(table, 4)
    table.manage_snapshots().create_tag(ids[1], "keep").commit()
    rows_tagged = multiset(table_rows(table, ids[1]))
    compact(table)
    table.refresh()
    result = expire_snapshots(table, retention=timedelta(0), now=FAR_FUTURE)
    table.refresh()
    assert ids[1] not in result.expired_snapshot_ids and ids[0] in result.expired_snapshot_ids
    assert reachable(table.metadata_location).all <= files_under(table.location())
    assert multiset(table_rows(table, ids[1])) == rows_tagged


@pytest.fixture
def opened(sqlite_events: Table, monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    """Manifest lists opened through the table's FileIO, by name."""
    counts: Counter[str] = Counter()
    io_class = type(sqlite_events.io)
    real = io_class.new_input

    def counting(self: object, location: str) -> object:
        if "/snap-" in location:
            counts[Path(local(location)).name] += 1
        return real(self, location)  # type: ignore[arg-type]

    monkeypatch.setattr(io_class, "new_input", counting)
    yield counts


def test_one_line_of_history_reads_one_retained_manifest_list(
    sqlite_events: Table, opened: Counter[str]
) -> None:
    table = sqlite_events
    _history(table, 8)
    snapshots = table.metadata.snapshots
    lists = [Path(local(s.manifest_list)).name for s in snapshots]
    cutoff = datetime.fromtimestamp(snapshots[3].timestamp_ms / 1000, UTC)
    opened.clear()
    result = expire_snapshots(table, retention=timedelta(0), now=cutoff)
    assert result.snapshots_expired == 3
    # the three expired ones and the oldest retained one, each once; no other
    assert set(opened) == set(lists[:4]) and max(opened.values()) == 1
    table.refresh()
    assert reachable(table.metadata_location).all <= files_under(table.location())


def test_nothing_to_expire_reads_no_manifest_list(
    sqlite_events: Table, opened: Counter[str]
) -> None:
    _history(sqlite_events, 3)
    opened.clear()
    assert expire_snapshots(sqlite_events, now=datetime.now(UTC)).snapshots_expired == 0
    assert not opened


@pytest.mark.parametrize(
    ("point", "kinds_gone"),
    [("expire.committed", set()), ("expire.group-deleted", {"data"})],
)
def test_fault_points_stop_between_the_commit_and_each_kind(
    sqlite_events: Table, monkeypatch: pytest.MonkeyPatch, point: str, kinds_gone: set[str]
) -> None:
    table = sqlite_events
    _history(table, 4)
    compact(table)
    table.refresh()
    disk = files_under(table.location())
    monkeypatch.setattr(faults, "_hits", {})
    monkeypatch.setenv(faults.ENV, f"{point}:1:raise")
    with pytest.raises(faults.FaultInjected):
        expire_snapshots(table, retention=timedelta(0), now=FAR_FUTURE)
    table.refresh()
    assert len(table.metadata.snapshots) < 4  # the expiry was committed
    gone = disk - files_under(table.location())
    assert {"data" if p.endswith(".parquet") else "other" for p in gone} == kinds_gone


def test_the_expiry_is_logged_with_its_counts(
    sqlite_events: Table, caplog: pytest.LogCaptureFixture
) -> None:
    table = sqlite_events
    _history(table, 3)
    deleted: list[str] = []
    with caplog.at_level(logging.INFO, logger="maintenance.expire"):
        result = expire_snapshots(
            table, retention=timedelta(0), now=FAR_FUTURE, delete=deleted.append
        )
    assert result.snapshots_expired == 2 and result.files_deleted == len(deleted) > 0
    assert [r.getMessage() for r in caplog.records if r.name == "maintenance.expire"] == [
        f"expired 2 snapshots; deleted {len(deleted)} files (0 failures)"
    ]


def test_the_default_now_is_utc_whatever_the_local_zone(
    sqlite_events: Table, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Five hours west of UTC, a local wall-clock "now" would put the cutoff five hours
    in the past, and the snapshots just made would look too young to expire."""
    table = sqlite_events
    ids = _history(table, 3)
    monkeypatch.setenv("TZ", "WEST+05")
    time.tzset()
    try:
        result = expire_snapshots(table, retention=timedelta(0))
    finally:
        monkeypatch.undo()
        time.tzset()
    assert result.expired_snapshot_ids == tuple(sorted(ids[:-1]))


def test_each_kind_is_counted_in_its_own_field(sqlite_events: Table) -> None:
    """Counts that differ by kind (the three deleted data files, the expired snapshots'
    four manifest lists, and the manifests between), so no count stands in for another."""
    table = sqlite_events
    rng = random.Random(11)
    three_hours = [r for h in range(3) for r in make_rows(rng, 2, hour_start(h), f"a{h}")]
    append(table, three_hours)  # one manifest, three data files
    append(table, make_rows(rng, 2, hour_start(3), "b"))
    append(table, make_rows(rng, 2, hour_start(4), "c"))
    table.delete(LessThan("client_ts", hour_start(3).isoformat()))  # the three files go
    append(table, make_rows(rng, 2, hour_start(5), "d"))
    table.refresh()
    before = reachable(table.metadata_location)
    result = expire_snapshots(table, retention=timedelta(0), now=FAR_FUTURE)
    table.refresh()
    after = reachable(table.metadata_location)
    assert result.snapshots_expired == len(before.manifest_lists) - 1
    counts = (
        result.data_files_deleted,
        result.manifests_deleted,
        result.manifest_lists_deleted,
    )
    assert counts == (
        len(before.data_files - after.data_files),
        len(before.manifests - after.manifests),
        len(before.manifest_lists - after.manifest_lists),
    )
    assert counts[0] == 3 and counts[2] == 4 and len(set(counts)) == 3


def test_a_second_expiry_walks_a_history_whose_start_was_expired(
    sqlite_events: Table, opened: Counter[str]
) -> None:
    """After a first expiry the history starts at a snapshot that had a parent; the
    second expiry still takes the one-line path and loses nothing."""
    table = sqlite_events
    _history(table, 8)
    snapshots = table.metadata.snapshots
    lists = [Path(local(s.manifest_list)).name for s in snapshots]
    at = [datetime.fromtimestamp(s.timestamp_ms / 1000, UTC) for s in snapshots]
    rows = multiset(table_rows(table))
    assert expire_snapshots(table, retention=timedelta(0), now=at[2]).snapshots_expired == 2
    table.refresh()
    opened.clear()
    second = expire_snapshots(table, retention=timedelta(0), now=at[5])
    assert second.expired_snapshot_ids == tuple(sorted(s.snapshot_id for s in snapshots[2:5]))
    assert set(opened) == set(lists[2:6]) and max(opened.values()) == 1
    table.refresh()
    assert reachable(table.metadata_location).all <= files_under(table.location())
    assert multiset(table_rows(table)) == rows


def test_a_stale_handle_expires_from_the_newest_head(sqlite_events: Table) -> None:
    """Snapshots another writer committed since this handle last looked are counted:
    expiry refreshes before its first attempt."""
    stale = sqlite_events
    _history(stale, 2)
    fresh = stale.catalog.load_table(stale.name())
    rng = random.Random(13)
    for i in range(2):
        append(fresh, make_rows(rng, 2, hour_start(i), f"late{i}"))
    fresh.refresh()
    ids = [s.snapshot_id for s in fresh.metadata.snapshots]
    assert len(stale.metadata.snapshots) == 2 and len(ids) == 4
    result = expire_snapshots(stale, retention=timedelta(0), now=FAR_FUTURE)
    assert result.expired_snapshot_ids == tuple(sorted(ids[:-1]))
    fresh.refresh()
    assert [s.snapshot_id for s in fresh.metadata.snapshots] == ids[-1:]
