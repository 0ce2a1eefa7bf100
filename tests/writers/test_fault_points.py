"""``lakehouse ingest`` killed at each named fault point (lakehouse/faults.py), in turn,
each kill checked to have landed there (exit -9, the point's marker, and the table in
the state that point leaves), then re-run: every event once, every reject once, every
file logged once. The oracle is the ids the test generated, not the writer's counts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from catalog import open_catalog
from lakehouse import faults
from lakehouse.settings import Settings
from lakehouse.tables import load_tables
from tests.support.reachable import unreachable_files
from tests.writers.events import rows
from tests.writers.test_kill import make_zone

pytestmark = pytest.mark.slow
FILES, PER_FILE = 6, 100  # --max-files-per-commit 2: three batches of two files


def ingest(zone: Path, home: Path, tmp_path: Path, point: str | None) -> tuple[int, str, list[str]]:
    marker = tmp_path / "marker"
    marker.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKEHOUSE_")}
    env["LAKEHOUSE_HOME"] = str(home)
    if point:
        env[faults.ENV], env[faults.MARKER_ENV] = point, str(marker)
    cmd = [sys.executable, "-m", "lakehouse.cli.main", "ingest", str(zone), "--create",
           "--max-files-per-commit", "2", "--json"]  # fmt: skip
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    hits = marker.read_text().split("\n")[:-1] if marker.exists() else []
    return done.returncode, done.stderr, hits


def state(home: Path) -> tuple[list[str], int, int, set[str]]:
    """(event ids, rejects, files logged, orphan files) as they stand."""
    settings = Settings.from_env(home=str(home))
    tables = load_tables(open_catalog(settings), settings.table)
    ids = (
        rows(tables.events).column("event_id").to_pylist()
        if tables.events.current_snapshot()
        else []
    )
    rejected = rows(tables.rejected).num_rows if tables.rejected.current_snapshot() else 0
    logged = rows(tables.ingested).num_rows if tables.ingested.current_snapshot() else 0
    events = tables.events
    return ids, rejected, logged, unreachable_files(events.metadata_location, events.location())


def ids_of_files(n: int) -> list[str]:
    return [f"e{i:06d}" for i in range(n * PER_FILE)]


def test_kills_at_each_fault_point_then_rerun_is_exactly_once(home: Path, tmp_path: Path) -> None:
    zone = tmp_path / "landing"
    expected, bad_lines = make_zone(zone, files=FILES, per_file=PER_FILE)
    landed: list[str] = []

    def kill_at(point: str) -> None:
        code, err, hits = ingest(zone, home, tmp_path, point)
        assert code == -9, f"{point}: exit {code}, the point was never reached: {err[-800:]}"
        assert hits and hits[-1].split()[0] == point.split(":")[0], hits
        landed.append(point)

    # 1. The first batch's files are written, nothing is committed: orphans only.
    kill_at("write.files-written:1")
    ids, rejected, logged, orphans = state(home)
    assert (ids, rejected, logged) == ([], 0, 0) and orphans
    # 2. Batch 1 went through whole; batch 2's events committed, not its rejects or log.
    kill_at("write.events-committed:2")
    ids, rejected, logged, _ = state(home)
    assert sorted(ids) == ids_of_files(4) and (rejected, logged) == (2, 2)
    # 3. Batch 2 is formed again: its key is found (no event written twice); its rejects
    #    are committed, then the process dies before the ingest log.
    kill_at("write.rejects-committed:1")
    ids, rejected, logged, _ = state(home)
    assert sorted(ids) == ids_of_files(4) and (rejected, logged) == (4, 2)
    # 4. Batch 2 again: events and rejects both found; killed before the ledger.
    kill_at("ingest.before-ledger:1")
    ids, rejected, logged, _ = state(home)
    assert sorted(ids) == ids_of_files(4) and (rejected, logged) == (4, 2)
    # The run to the end: exactly once, by content.
    code, err, hits = ingest(zone, home, tmp_path, None)
    assert code == 1 and not hits, err[-800:]  # 1: bad lines were rejected (and kept)
    ids, rejected, logged, _ = state(home)
    assert len(ids) == len(set(ids)) and set(ids) == expected
    assert (rejected, logged) == (bad_lines, FILES)
    print(f"kills landed at: {', '.join(landed)}")
    assert len(landed) == 4
