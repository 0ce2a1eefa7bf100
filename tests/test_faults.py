"""lakehouse.faults: a named point does nothing unless the variable names it; then it
marks the file and acts (SIGKILL or raise) on the N-th hit exactly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lakehouse import faults

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _fresh_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(faults, "_hits", {})


def test_a_point_is_a_no_op_unless_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    monkeypatch.setenv(faults.MARKER_ENV, str(marker))
    monkeypatch.delenv(faults.ENV, raising=False)
    faults.point("write.files-written")
    monkeypatch.setenv(faults.ENV, "write.events-committed:1:raise")
    faults.point("write.files-written")  # another point: nothing
    assert not marker.exists()


def test_the_nth_hit_raises_and_marks(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    monkeypatch.setenv(faults.MARKER_ENV, str(marker))
    monkeypatch.setenv(faults.ENV, "ingest.before-ledger:3:raise")
    faults.point("ingest.before-ledger")
    faults.point("ingest.before-ledger")
    assert not marker.exists()
    with pytest.raises(faults.FaultInjected, match="hit 3"):
        faults.point("ingest.before-ledger")
    faults.point("ingest.before-ledger")  # the 4th passes again
    name, hit, _pid = marker.read_text().split()
    assert (name, hit) == ("ingest.before-ledger", "3")


def test_kill_is_a_sigkill_of_the_process_at_that_point(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    code = (
        "from lakehouse import faults\n"
        "for i in range(5):\n"
        "    print('before', i, flush=True)\n"
        "    faults.point('expire.group-deleted')\n"
        "print('never')\n"
    )
    env = {faults.ENV: "expire.group-deleted:2", faults.MARKER_ENV: str(marker), "PATH": ""}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == -9
    assert done.stdout.split("\n")[:-1] == ["before 0", "before 1"]
    assert marker.read_text().split()[:2] == ["expire.group-deleted", "2"]


def test_every_point_is_placed_in_the_code_once() -> None:
    sources = "".join(
        p.read_text() for pkg in ("writers", "maintenance") for p in (ROOT / pkg).rglob("*.py")
    )
    for name in faults.POINTS:
        assert sources.count(f'faults.point("{name}")') == 1, name
