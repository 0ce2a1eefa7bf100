"""Trino-run maintenance (``lakehouse.engines.trino.maintenance``): the maintenance plan carried
out by Trino's ``optimize`` per planned hour, then ``optimize_manifests``,
``expire_snapshots`` and ``remove_orphan_files``; the result counts are checked against
the table, and the rewritten files are read back: sorted by ``(client_ts, event_id)``,
same rows."""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from catalog import open_catalog
from lakehouse.engines.trino.maintenance import run_maintenance_with_trino
from lakehouse.settings import Settings
from lakehouse.trino_server import query
from maintenance import (
    LAST_RUN_PROPERTY,
    CompactionOptions,
    MaintenanceOptions,
    plan_compaction,
    read_lease,
)
from maintenance.manifests import manifest_counts
from tests.trino.conftest import TrinoPool, TrinoServer
from tests.trino.generate import LONE_HOUR, fragment, table_rows

pytestmark = pytest.mark.trino


@dataclass(frozen=True)
class Fragmented:
    settings: Settings
    port: int
    rows: Counter[tuple[Any, ...]]
    old_orphan: Path
    new_orphan: Path


def _orphan(table_dir: Path, name: str, age: timedelta) -> Path:
    path = table_dir / "data" / name
    path.write_bytes(b"left by a failed commit")
    stamp = (datetime.now(UTC) - age).timestamp()
    os.utime(path, (stamp, stamp))
    return path


@pytest.fixture(scope="module")
def fragmented(embedded_trino: TrinoServer, trino_pool: TrinoPool) -> Fragmented:
    server = trino_pool.ensure(embedded_trino)
    settings = server.on_table("maint", "events")
    rows = fragment(settings, seed=5)
    table = open_catalog(settings).load_table(settings.table.identifier)
    table_dir = Path(table.location().removeprefix("file://"))
    return Fragmented(
        settings,
        server.port,
        rows,
        _orphan(table_dir, "old-orphan.parquet", timedelta(hours=2)),
        _orphan(table_dir, "new-orphan.parquet", timedelta(0)),
    )


OPTIONS = MaintenanceOptions(
    compaction=CompactionOptions(target_file_size=16 * 1024 * 1024),
    snapshot_retention=timedelta(0),
    orphan_retention=timedelta(hours=1),
    force=True,
    max_manifests=4,
)


def _sorted_file(path: str) -> bool:
    data = pq.read_table(path.removeprefix("file://"), columns=["client_ts", "event_id"])
    keys = list(zip(data["client_ts"].to_pylist(), data["event_id"].to_pylist(), strict=True))
    return keys == sorted(keys)


def test_a_dry_run_changes_nothing(fragmented: Fragmented) -> None:
    table = open_catalog(fragmented.settings).load_table(fragmented.settings.table.identifier)
    before = table.metadata.current_snapshot_id
    plan = plan_compaction(table, OPTIONS.compaction)
    options = replace(OPTIONS, dry_run=True)
    result = run_maintenance_with_trino(fragmented.settings, options, port=fragmented.port)
    assert result.dry_run and result.ok
    assert result.compaction is not None and result.compaction.files_rewritten == plan.files > 0
    assert (
        result.expiry is not None and result.expiry.snapshots_expired == len(table.snapshots()) - 1
    )
    assert result.orphans is not None and result.orphans.orphans_found == 1
    assert table.refresh().metadata.current_snapshot_id == before
    assert fragmented.old_orphan.exists()


def test_trino_carries_out_the_plan(fragmented: Fragmented) -> None:
    settings = fragmented.settings
    table = open_catalog(settings).load_table(settings.table.identifier)
    plan = plan_compaction(table, OPTIONS.compaction)
    lone = {g.hour for g in plan.groups if g.start == LONE_HOUR}
    hours = {g.hour for g in plan.groups} - lone
    assert len(hours) >= 8 and len(lone) == 1
    files_planned = sum(len(g.files) for g in plan.groups if g.hour in hours)
    snapshots_before = {s.snapshot_id for s in table.snapshots()}

    result = run_maintenance_with_trino(settings, OPTIONS, port=fragmented.port, plan=plan)

    assert result.ok, result.to_dict()
    c = result.compaction
    assert c is not None
    assert c.groups_committed == len([g for g in plan.groups if g.hour in hours])
    assert c.files_rewritten == files_planned and c.replace_commits == len(hours)
    assert c.records_added == c.records_rewritten > 0 and c.duplicates_removed == 0
    assert [s.error_type for s in c.skipped] == ["NotRewritten"]  # Trino leaves a lone file
    table.refresh()
    live = table.inspect.files().to_pylist()
    assert c.files_added == sum(1 for f in live if f["partition"]["client_ts_hour"] in hours)
    for f in live:
        if f["partition"]["client_ts_hour"] in hours:
            assert _sorted_file(f["file_path"]), f["file_path"]  # Trino kept the sort order
    assert Counter(table_rows(settings)) == fragmented.rows  # and the rows
    [(n,)] = query(
        "SELECT count(*) FROM maint.events", settings=settings, port=fragmented.port
    ).rows
    assert n == sum(fragmented.rows.values())

    e = result.expiry
    assert e is not None
    assert set(e.expired_snapshot_ids) >= snapshots_before  # all of them, and Trino's own
    assert [s.snapshot_id for s in table.snapshots()] == [table.metadata.current_snapshot_id]
    assert e.snapshots_expired == len(e.expired_snapshot_ids) > len(snapshots_before)
    # Trino's (Iceberg's incremental) cleanup deletes what expired snapshots removed; files
    # the current snapshot removed (if it is the last optimize) wait for the next expiry.
    current = table.current_snapshot()
    assert current is not None and current.summary is not None
    waiting = int(current.summary.get("deleted-data-files") or 0)
    assert e.data_files_deleted == c.files_rewritten - waiting and e.manifest_lists_deleted > 0

    o = result.orphans
    assert o is not None and o.orphans_found == 1 and o.orphans_deleted == 1
    assert o.orphans_too_recent >= 1
    assert not fragmented.old_orphan.exists() and fragmented.new_orphan.exists()

    m = result.manifests
    assert m is not None and m.manifests_after == manifest_counts(table)[0]

    record = json.loads(table.properties[LAST_RUN_PROPERTY])
    assert record["engine"] == "trino" and record["run_id"] == result.run_id and record["ok"]
    assert read_lease(table) is None


def test_a_second_run_finds_the_hours_clean(fragmented: Fragmented) -> None:
    settings = fragmented.settings
    table = open_catalog(settings).load_table(settings.table.identifier)
    plan = plan_compaction(table, OPTIONS.compaction)
    assert {g.start for g in plan.groups} <= {LONE_HOUR}  # Trino's sorted output is clean
    result = run_maintenance_with_trino(settings, OPTIONS, port=fragmented.port)
    assert result.compaction is not None and result.compaction.groups_committed == 0
    assert Counter(table_rows(settings)) == fragmented.rows
