"""Orphan removal's short walk over one line of history (``ReachCache.reach_line``)
reaches exactly the files an independent walk of every retained snapshot reaches, while
reading only the head's manifests and those that record removals."""

from __future__ import annotations

import random
from collections import Counter
from datetime import timedelta
from types import SimpleNamespace

import pytest
from pyiceberg.io import FileIO
from pyiceberg.manifest import ManifestFile
from pyiceberg.table import Table
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.refs import SnapshotRef, SnapshotRefType
from pyiceberg.table.snapshots import Snapshot

from maintenance import compact, expire_snapshots
from maintenance import expire as expire_module
from maintenance.expire import ReachCache, history_line
from maintenance.manifests import rewrite_manifests
from maintenance.orphans import referenced_files
from tests.maintenance.builders import Fed, append, make_rows, sort_rows, to_arrow
from tests.support.reachable import _avro, local, reachable

_DELETED = 2  # manifest entry status (Iceberg spec)


def short_walk(table: Table) -> tuple[set[str], set[str], set[str], int]:
    """(data files, manifests, manifest lists) the short walk reaches, as local paths, and
    how many manifests it read."""
    table.refresh()
    line = history_line(table.metadata)
    assert line is not None
    cache = ReachCache(table.io)
    reach = cache.reach_line(line)
    return (
        {local(p) for p in reach.live_files.values()},
        {local(p) for p in reach.manifests.values()},
        {local(p) for p in reach.manifest_lists.values()},
        cache.manifests_read,
    )


def must_read(table: Table) -> set[str]:
    """The manifests the short walk is to decode: the head's, and of the other snapshots'
    those that count deleted files (read from the manifest lists with fastavro)."""
    head = table.metadata.current_snapshot()
    assert head is not None
    out = {local(m["manifest_path"]) for m in _avro(head.manifest_list)}
    for snapshot in table.metadata.snapshots:
        out.update(
            local(m["manifest_path"])
            for m in _avro(snapshot.manifest_list)
            if m["deleted_files_count"] != 0
        )
    return out


def assert_same_as_oracle(table: Table) -> int:
    """The short walk against the independent one; returns how many manifests it read."""
    files, manifests, lists, read = short_walk(table)
    oracle = reachable(table.metadata_location)
    assert files == oracle.data_files
    assert manifests == oracle.manifests
    assert lists == oracle.manifest_lists
    assert read == len(must_read(table))  # and decoded no other manifest
    return read


def removed_by(table: Table, snapshot_id: int) -> set[str]:
    """Files the snapshot's own manifest list records as DELETED by it (fastavro)."""
    snapshot = table.metadata.snapshot_by_id(snapshot_id)
    assert snapshot is not None
    out = set()
    for manifest in _avro(snapshot.manifest_list):
        for entry in _avro(manifest["manifest_path"]):
            if entry["status"] == _DELETED and entry["snapshot_id"] == snapshot_id:
                out.add(local(entry["data_file"]["file_path"]))
    return out


def test_the_short_walk_reaches_what_every_snapshot_reaches(
    sqlite_fed: tuple[Table, Fed],
) -> None:
    table, data = sqlite_fed
    assert_same_as_oracle(table)  # appends only
    compact(table)  # replace and overwrite snapshots: the small files become DELETED entries
    table.refresh()
    compactions = [
        s.snapshot_id
        for s in table.metadata.snapshots
        if s.summary is not None and s.summary.operation.value in ("replace", "overwrite")
    ]
    assert compactions and all(removed_by(table, sid) for sid in compactions)
    assert_same_as_oracle(table)
    for i in range(3):  # appends after the compaction
        append(table, sort_rows(make_rows(random.Random(i), 20, data.hours[0], f"x{i}")))
    table.refresh()
    read = assert_same_as_oracle(table)
    distinct = len(reachable(table.metadata_location).manifests)
    assert read < distinct, f"read {read} of {distinct} manifests: nothing was skipped"

    # The first compaction snapshot becomes the oldest retained: its parent is gone, so
    # the files it removed are reachable from no retained snapshot any more.
    line = history_line(table.metadata)
    assert line is not None
    ids = [s.snapshot_id for s in line]  # head first
    first = max(compactions, key=ids.index)
    position = ids.index(first)
    gone_with_parent = removed_by(table, first)
    expire_snapshots(table, retention=timedelta(0), retain_last=position + 1)
    table.refresh()
    assert history_line(table.metadata)[-1].snapshot_id == first  # type: ignore[index]
    files, _, _, _ = short_walk(table)
    assert gone_with_parent and not (gone_with_parent & files)
    assert_same_as_oracle(table)
    expire_snapshots(table, retention=timedelta(0), retain_last=1)
    assert_same_as_oracle(table)


def test_a_tag_or_a_second_branch_takes_the_full_walk(sqlite_fed: tuple[Table, Fed]) -> None:
    table, data = sqlite_fed
    compact(table)
    table.refresh()
    assert history_line(table.metadata) is not None
    first = table.metadata.snapshots[0].snapshot_id
    table.manage_snapshots().create_tag(first, "audit").commit()
    assert history_line(table.metadata) is None
    refs = {local(p) for p in referenced_files(table)}
    assert refs >= reachable(table.metadata_location).all
    table.manage_snapshots().remove_tag("audit").create_branch(first, "side").commit()
    assert history_line(table.metadata) is None
    rows = sort_rows(make_rows(random.Random(5), 20, data.hours[0], "side"))
    table.append(to_arrow(rows), branch="side")  # a snapshot off the main line
    table.refresh()
    side = table.metadata.snapshot_by_name("side")
    assert side is not None and side.snapshot_id not in {
        s.snapshot_id for s in table.metadata.snapshots if s.snapshot_id != side.snapshot_id
    }
    refs = {local(p) for p in referenced_files(table)}
    oracle = reachable(table.metadata_location)
    assert refs >= oracle.all
    assert (
        oracle.by_snapshot[side.snapshot_id]
        - oracle.by_snapshot[table.metadata.current_snapshot_id]
    )  # type: ignore[index]


def test_removals_the_head_no_longer_lists_are_still_reached(
    sqlite_fed: tuple[Table, Fed],
) -> None:
    """After a manifest rewrite the head lists none of the manifests that recorded a
    compaction's removals; the files they removed are still readable from the snapshots
    before the compaction, and the short walk finds them in those manifests."""
    table, _ = sqlite_fed
    compact(table)
    table.refresh()
    removers = [
        s.snapshot_id
        for s in table.metadata.snapshots
        if s.summary is not None and s.summary.operation.value in ("replace", "overwrite")
    ]
    rewrite_manifests(table, max_manifests=0)
    table.refresh()
    head = table.metadata.current_snapshot()
    assert head is not None
    head_manifests = {local(m["manifest_path"]) for m in _avro(head.manifest_list)}
    removal_manifests = {
        local(m["manifest_path"])
        for sid in removers
        for m in _avro(table.metadata.snapshot_by_id(sid).manifest_list)  # type: ignore[union-attr]
        if any(e["status"] == _DELETED for e in _avro(m["manifest_path"]))
    }
    assert removal_manifests and not (removal_manifests & head_manifests)
    removed = set().union(*(removed_by(table, sid) for sid in removers))
    files, _, _, _ = short_walk(table)
    assert removed and removed <= files
    assert_same_as_oracle(table)


def test_each_manifest_is_decoded_once_per_cache(
    sqlite_fed: tuple[Table, Fed], monkeypatch: pytest.MonkeyPatch
) -> None:
    table, _ = sqlite_fed
    compact(table)
    table.refresh()
    decoded: Counter[str] = Counter()
    real = expire_module.manifest_entries

    def counting(manifest: ManifestFile, io: FileIO, **kwargs: bool) -> list:  # type: ignore[type-arg]
        decoded[manifest.manifest_path] += 1
        return real(manifest, io, **kwargs)

    monkeypatch.setattr(expire_module, "manifest_entries", counting)
    cache = ReachCache(table.io)
    line = history_line(table.metadata)
    assert line is not None
    first = cache.reach(list(table.metadata.snapshots))
    again = cache.reach(list(table.metadata.snapshots))
    short = cache.reach_line(line)
    assert decoded and max(decoded.values()) == 1, decoded
    assert cache.manifests_read == len(decoded)
    assert first.live_files == again.live_files and short.manifests == first.manifests


def _snap(snapshot_id: int, parent: int | None) -> Snapshot:
    return Snapshot(
        snapshot_id=snapshot_id,
        parent_snapshot_id=parent,
        sequence_number=snapshot_id,
        timestamp_ms=snapshot_id,
        manifest_list=f"snap-{snapshot_id}.avro",
    )


def test_history_line_refuses_what_is_not_one_line() -> None:
    def metadata(head: int, parents: dict[int, int | None]) -> TableMetadata:
        return SimpleNamespace(  # type: ignore[return-value]
            refs={"main": SnapshotRef(snapshot_id=head, snapshot_ref_type=SnapshotRefType.BRANCH)},
            snapshots=[_snap(sid, parent) for sid, parent in parents.items()],
        )

    line = history_line(metadata(3, {1: None, 2: 1, 3: 2}))
    assert line is not None and [s.snapshot_id for s in line] == [3, 2, 1]
    assert history_line(metadata(3, {1: None, 2: 1, 3: 1})) is None  # 2 is off the line
    assert history_line(metadata(3, {1: 3, 2: 1, 3: 2})) is None  # parent links in a cycle
    assert history_line(metadata(3, {1: 9, 2: 1, 3: 2})) is not None  # a parent expired
    assert history_line(metadata(7, {1: None})) is None  # the head is missing


def test_orphan_removal_takes_the_short_walk_on_one_line(
    sqlite_fed: tuple[Table, Fed], monkeypatch: pytest.MonkeyPatch
) -> None:
    table, data = sqlite_fed
    compact(table)
    for i in range(2):  # appends after the compaction: older manifests are only named
        append(table, sort_rows(make_rows(random.Random(i), 20, data.hours[0], f"y{i}")))
    table.refresh()
    decoded: set[str] = set()
    real = expire_module.manifest_entries

    def counting(manifest: ManifestFile, io: FileIO, **kwargs: bool) -> list:  # type: ignore[type-arg]
        decoded.add(local(manifest.manifest_path))
        return real(manifest, io, **kwargs)

    monkeypatch.setattr(expire_module, "manifest_entries", counting)
    refs = {local(p) for p in referenced_files(table)}
    oracle = reachable(table.metadata_location)
    assert refs >= oracle.all
    assert decoded == must_read(table) and decoded < oracle.manifests
