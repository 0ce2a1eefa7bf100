"""A subprocess ingest killed with SIGKILL at random moments, then re-run, leaves every
event exactly once, every reject once, and every retained snapshot readable.

Random kills complement the named fault points (test_fault_points.py): each kill is
timed from the moment the run starts writing (not from its start: imports can take
seconds on a busy machine), and where it landed is judged from what it left behind
(tests/reliability/harness.py ``kill_phase``). The test reports the phases and fails
when no kill hit a commit window."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from catalog import open_catalog
from lakehouse.settings import Settings
from lakehouse.tables import load_tables
from tests.reliability.harness import (
    BEFORE_ANY_WRITE,
    COMMIT_WINDOWS,
    TableState,
    files_under,
    kill_phase,
    table_state,
)
from tests.writers.events import event, rows

pytestmark = pytest.mark.slow


def make_zone(root: Path, files: int = 30, per_file: int = 1500) -> tuple[set[str], int]:
    ids: set[str] = set()
    bad = 0
    for f in range(files):
        folder = root / f"{f // 10:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        batch = [
            event(f * per_file + i, minutes=(f * per_file + i) % 3000) for i in range(per_file)
        ]
        ids.update(e["event_id"] for e in batch)
        lines = [json.dumps(e) for e in batch]
        lines += [json.dumps(e) for e in batch[:10]]  # resends
        lines.append('{"event_id": "cut"')
        bad += 1
        (folder / f"f{f:03d}.ndjson").write_text("\n".join(lines) + "\n")
    return ids, bad


def run_ingest(zone: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        "-m",
        "lakehouse.cli.main",
        "ingest",
        str(zone),
        "--create",
        "--max-files-per-commit",
        "2",
        "--json",
    ]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_sigkill_at_several_points_then_rerun_is_exactly_once(home: Path, tmp_path: Path) -> None:
    zone = tmp_path / "landing"
    expected, bad_lines = make_zone(zone)
    env = {**os.environ, "LAKEHOUSE_HOME": str(home)}
    rng = random.Random(20241126)
    settings = Settings.from_env(home=str(home))
    phases: list[str] = []

    def state() -> TableState | None:
        try:
            return table_state(load_tables(open_catalog(settings), settings.table))
        except Exception:  # the tables do not exist yet (the first run creates them)
            return None

    for _ in range(6):
        before = state()
        baseline = files_under(home)
        proc = run_ingest(zone, env)
        deadline = time.monotonic() + 120
        while proc.poll() is None and files_under(home) == baseline and time.monotonic() < deadline:
            time.sleep(0.05)  # until the run writes something (imports and listing done)
        time.sleep(rng.uniform(0.0, 0.8))  # the whole run takes a few seconds when idle
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            after = state()
            phases.append(kill_phase(before, after) if before and after else BEFORE_ANY_WRITE)
        proc.wait()
    kills = len(phases)
    print("kills landed: " + "; ".join(f"{p}: {phases.count(p)}" for p in sorted(set(phases))))
    final = run_ingest(zone, env)
    out, err = final.communicate(timeout=300)
    summary = json.loads(out.decode().strip().splitlines()[-1])
    # 1 when this run rejected bad lines (kept), 0 when the killed runs had left nothing
    assert final.returncode == (1 if summary["records_rejected"] else 0), err.decode()
    assert kills >= 3, "the ingest finished too early to be killed; make the zone bigger"
    assert any(p in COMMIT_WINDOWS for p in phases), f"no kill hit a commit window: {phases}"

    settings = Settings.from_env(home=str(home))
    tables = load_tables(open_catalog(settings), settings.table)
    ids = rows(tables.events).column("event_id").to_pylist()
    assert len(ids) == len(set(ids)), "an event was committed twice"
    assert set(ids) == expected, "an event was lost"
    rejected = rows(tables.rejected).to_pylist()
    assert len(rejected) == bad_lines and {r["raw"] for r in rejected} == {'{"event_id": "cut"'}
    assert len({(r["source"], r["line"]) for r in rejected}) == bad_lines
    logged = rows(tables.ingested).column("source").to_pylist()
    assert len(logged) == len(set(logged)) == 30
    for snap in tables.events.metadata.snapshots:  # every retained snapshot reads
        tables.events.scan(snapshot_id=snap.snapshot_id).to_arrow()
