"""A compaction plan describes one snapshot: the files it plans are exactly the live files
of the snapshot it names, even when a writer commits while it is being made."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from pyiceberg.io import FileIO
from pyiceberg.manifest import ManifestFile
from pyiceberg.table import Table
from pyiceberg.table.snapshots import Snapshot

from maintenance import plan_compaction
from tests.maintenance.builders import append, make_rows, sort_rows


def _hour(h: int) -> datetime:
    return datetime(2024, 5, 1, h, tzinfo=UTC)


def test_plan_uses_a_consistent_snapshot_under_concurrent_appends(
    sqlite_events: Table, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = sqlite_events
    rng = random.Random(3)
    for b in range(4):  # small files in two closed hours: both are planned
        append(table, sort_rows(make_rows(rng, 5, _hour(1), f"c{b}")))
    for b in range(2):
        append(table, sort_rows(make_rows(rng, 5, _hour(2), f"d{b}")))
    late = sort_rows(make_rows(rng, 3, _hour(2), "w"))
    original = Snapshot.manifests
    landed: list[int] = []

    def manifests_then_a_writer_commits(self: Snapshot, io: FileIO) -> list[ManifestFile]:
        found = original(self, io)
        if not landed:  # a writer commits through the same handle while the plan reads
            landed.append(self.snapshot_id)
            append(table, late)
        return found

    monkeypatch.setattr(Snapshot, "manifests", manifests_then_a_writer_commits)
    plan = plan_compaction(table)
    monkeypatch.undo()

    fresh = table.catalog.load_table(table.name())
    assert landed == [plan.snapshot_id], "the plan reads the snapshot it names"
    assert fresh.metadata.current_snapshot_id != plan.snapshot_id, "the writer landed meanwhile"
    at_plan = {t.file.file_path for t in fresh.scan(snapshot_id=plan.snapshot_id).plan_files()}
    at_head = {t.file.file_path for t in fresh.scan().plan_files()}
    planned = {f.path for group in plan.groups for f in group.files}
    assert {g.hour for g in plan.groups} == {int(_hour(h).timestamp()) // 3600 for h in (1, 2)}
    assert len(at_plan) == 6 and len(at_head) == 7
    assert planned == at_plan
