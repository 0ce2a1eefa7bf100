"""``lakehouse maintain run`` killed at each named fault point of compaction and expiry
(lakehouse/faults.py), each kill checked to have landed there, then run again: no row
lost or doubled, no file a retained snapshot reads is missing, and a last run leaves no
orphan. Files are judged by the independent oracle (tests/support/reachable.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pyiceberg.table import Table

from lakehouse import faults
from tests.maintenance.assertions import assert_compacted
from tests.maintenance.builders import Fed, multiset, table_rows
from tests.support.reachable import missing_files, reachable, unreachable_files

pytestmark = pytest.mark.slow
ARGS = ["maintain", "run", "--json", "--no-lease", "--snapshot-retention", "0s",
        "--retain-last", "2", "--orphan-retention", "0s", "--force"]  # fmt: skip


def maintain(home: Path, tmp_path: Path, point: str | None) -> tuple[int, str, list[str]]:
    marker = tmp_path / "marker"
    marker.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKEHOUSE_")}
    env["LAKEHOUSE_HOME"] = str(home)
    if point:
        env[faults.ENV], env[faults.MARKER_ENV] = point, str(marker)
    cmd = [sys.executable, "-m", "lakehouse.cli.main", *ARGS]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    hits = marker.read_text().split("\n")[:-1] if marker.exists() else []
    return done.returncode, done.stderr, hits


def test_maintenance_killed_at_each_fault_point_loses_nothing(
    home: Path, tmp_path: Path, sqlite_fed: tuple[Table, Fed]
) -> None:
    table, data = sqlite_fed
    expected_ids = {r["event_id"] for r in data.expected()}

    def kill_at(point: str) -> None:
        code, err, hits = maintain(home, tmp_path, point)
        assert code == -9, f"{point}: exit {code}, the point was never reached: {err[-800:]}"
        assert hits and hits[-1].split()[0] == point.split(":")[0], hits
        table.refresh()
        assert not missing_files(table.metadata_location), point
        rows = table_rows(table)
        assert {r["event_id"] for r in rows} == expected_ids, point
        for snapshot_id in reachable(table.metadata_location).by_snapshot:
            table.scan(snapshot_id=snapshot_id).to_arrow()  # every retained snapshot reads

    # A group rewritten, not committed: its output is an orphan, the table unchanged.
    before = multiset(table_rows(table))
    kill_at("compact.files-written:1")
    assert unreachable_files(table.metadata_location, table.location())
    assert multiset(table_rows(table)) == before
    # One group committed, the others not.
    kill_at("compact.group-committed:1")
    kinds = [s.summary.get("lakehouse.kind") for s in table.metadata.snapshots]
    assert kinds.count("compaction") == 1
    # Expiry committed, nothing deleted yet; then the data files of expired snapshots
    # deleted, not their manifests or manifest lists.
    kill_at("expire.committed:1")
    kill_at("expire.group-deleted:1")
    code, err, _ = maintain(home, tmp_path, None)
    assert code == 0, err[-800:]
    table.refresh()
    assert not missing_files(table.metadata_location)
    assert not unreachable_files(table.metadata_location, table.location())
    assert_compacted(table, data)
