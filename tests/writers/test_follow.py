"""``lakehouse ingest --follow`` as a user runs it: files dropped in waves while the
follower runs, a producer that writes one file slowly, files that are not NDJSON at all,
then SIGTERM; every event is in the table exactly once and the follower exits 0."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from lakehouse.cli.main import cli
from tests.writers.follow_support import (
    Follower,
    assert_exactly_once,
    event_line,
    stored,
    tables,
    write_file,
)


def test_follow_options_need_follow(home: Path, tmp_path: Path) -> None:
    for args in (["--every", "5s"], ["--settle", "0s"], ["--no-lease"], ["--lease-ttl", "1m"]):
        result = CliRunner().invoke(cli, ["ingest", str(tmp_path), *args])
        assert result.exit_code == 2, result.output
        assert "needs --follow" in result.output
    result = CliRunner().invoke(cli, ["ingest", str(tmp_path), "--follow", "--every", "0s"])
    assert result.exit_code == 2 and "--every" in result.output


def test_a_wrong_path_ends_the_follower_at_once(home: Path, tmp_path: Path) -> None:
    """A usage error in the first cycle will not fix itself: exit 2, not a loop."""
    follower = Follower(tmp_path / "no-such-zone", tmp_path / "out", "--create")
    follower.wait_for("the follower to exit", lambda: follower.proc.poll() is not None)
    follower.close()
    assert follower.proc.returncode == 2, follower.stderr_text()
    error = json.loads(follower.stderr_text().strip().splitlines()[-1])
    assert error["type"] == "UsageError" and "no such file" in error["message"]


@pytest.mark.slow
def test_waves_a_slow_producer_and_bad_files_then_sigterm(home: Path, tmp_path: Path) -> None:
    zone = tmp_path / "landing"
    zone.mkdir()
    expected: set[str] = set()

    def wave(n: int, files: int, per_file: int = 40, gz: bool = False) -> None:
        for f in range(files):
            ids = [f"w{n}-f{f}-{i}" for i in range(per_file)]
            expected.update(ids)
            write_file(zone / f"2026/12/03/{n:02d}/part-{f}.ndjson", ids, gz=gz)

    follower = Follower(
        zone,
        tmp_path / "out",
        "--create",
        "--every",
        "1s",
        "--settle",
        "1s",
        "--max-files-per-commit",
        "3",
    )
    try:
        wave(1, 5)
        # a file that is no NDJSON at all, and one with one malformed line among events
        (zone / "2026/12/03/01/garbage.ndjson").write_bytes(bytes(range(128, 256)) + b"\n")
        write_file(zone / "2026/12/03/01/mixed.jsonl", ["m-1", "m-2"], bad_lines=['{"cut":'])
        expected.update({"m-1", "m-2"})
        follower.wait_files(7)

        wave(2, 4, gz=True)
        # a producer that writes one file slowly: its last line grows for ~3 s, in
        # pieces a quarter second apart, each under the 1 s settle period
        slow = zone / "2026/12/03/02/slow.ndjson"
        ids = [f"slow-{i}" for i in range(30)]
        expected.update(ids)
        lines = [event_line(i) for i in ids]
        with slow.open("w") as out:
            out.write("".join(line + "\n" for line in lines[:-1]))
            out.flush()
            last = lines[-1] + "\n"
            step = max(1, len(last) // 12)
            for k in range(0, len(last), step):
                time.sleep(0.2)
                out.write(last[k : k + step])
                out.flush()
        follower.wait_files(12)

        wave(3, 3)
        follower.wait_files(15)
        finished = datetime.now(UTC)
        follower.wait_cycle_after(finished)  # one more cycle finds nothing new
        code = follower.stop()
    finally:
        follower.close()
    assert code == 0, follower.stderr_text()
    assert "Traceback" not in follower.stderr_text()

    assert_exactly_once(home, expected)
    cycles = follower.cycles()
    assert [c["cycle"] for c in cycles] == list(range(1, len(cycles) + 1))
    assert sum(c["files"] for c in cycles) == 15
    assert all(not c["errors"] for c in cycles), [c["errors"] for c in cycles if c["errors"]]
    assert cycles[-1]["files"] == 0
    t = tables(home)
    rejected = stored(t.rejected, "source")
    assert {Path(s).name for s in rejected} == {"garbage.ndjson", "mixed.jsonl"}
    assert sum(c["rejected"] for c in cycles) == len(rejected)
    ledger = stored(t.ingested, "source")
    assert len(ledger) == len(set(ledger)) == 15


@pytest.mark.slow
def test_a_file_written_in_two_parts_with_an_incomplete_line_between(
    home: Path, tmp_path: Path
) -> None:
    """The producer pauses longer than the settle period in the middle of a line: the
    complete lines are ingested, the incomplete one waits, and once the file is complete
    its new lines are ingested too; nothing is rejected, nothing is doubled."""
    zone = tmp_path / "landing"
    zone.mkdir()
    ids = [f"two-{i}" for i in range(40)]
    lines = [event_line(i) for i in ids]
    path = zone / "2026/12/03/07/stream-1-2026-12-03-07-05-12-0f0e.ndjson"
    path.parent.mkdir(parents=True)
    first, second = lines[:20], lines[20:]
    half = len(second[0]) // 2
    path.write_text("".join(line + "\n" for line in first) + second[0][:half])
    follower = Follower(zone, tmp_path / "out", "--create", "--every", "1s", "--settle", "1s")
    try:
        follower.wait_for(
            "the first part ingested",
            lambda: any(c["records"] > 0 for c in follower.cycles()),
        )
        with path.open("a") as out:
            out.write(second[0][half:] + "\n" + "".join(line + "\n" for line in second[1:]))
        finished = datetime.now(UTC)
        time.sleep(2)
        follower.wait_cycle_after(finished)
        follower.wait_cycle_after(datetime.now(UTC))
        code = follower.stop()
    finally:
        follower.close()
    assert code == 0, follower.stderr_text()
    assert stored(tables(home).rejected, "source") == []
    assert_exactly_once(home, set(ids))
