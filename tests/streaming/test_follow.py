"""``lakehouse ingest kinesis://STREAM`` as users run it: once (stops at the tip, exit
code 1 when records were rejected, one JSON line), with ``--follow`` as a process that is
SIGKILLed at random moments while the stream is resharded and restarted, then stopped
with SIGTERM (exit 0); ``health`` shows each shard's lag."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from lakehouse.cli.main import cli
from lakehouse.settings import Settings
from tests.streaming.check import check_exactly_once
from tests.streaming.feeder import Feeder


def test_once_stops_at_the_tip_and_health_shows_the_lag(
    sqlite_settings: Settings, feeder: Feeder
) -> None:
    feeder.put_mixed(120)
    runner = CliRunner()
    out = runner.invoke(cli, ["ingest", f"kinesis://{feeder.stream}", "--create", "--json"])
    assert out.exit_code == 1, out.output  # some records were rejected
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert result["records_rejected"] == len(feeder.bad) > 0
    assert result["stream"] == f"kinesis://{feeder.stream}"
    check_exactly_once(sqlite_settings, feeder)

    health = json.loads(runner.invoke(cli, ["health", "--json"]).stdout)
    assert [s["records_behind"] for s in health["streams"][feeder.stream]] == [0, 0]

    before = feeder.records
    feeder.put_mixed(25)
    health = json.loads(runner.invoke(cli, ["health", "--json"]).stdout)
    lag = health["streams"][feeder.stream]
    assert sum(s["records_behind"] for s in lag) == feeder.records - before == 25
    assert all(s["seconds_behind"] >= 0 for s in lag)

    out = runner.invoke(cli, ["ingest", f"kinesis://{feeder.stream}", "--json"])
    assert out.exit_code in (0, 1), out.output
    check_exactly_once(sqlite_settings, feeder)
    health = json.loads(runner.invoke(cli, ["health", "--json"]).stdout)
    assert sum(s["records_behind"] for s in health["streams"][feeder.stream]) == 0


def test_bad_stream_names_and_options_are_usage_errors(sqlite_settings: Settings) -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["ingest", "kinesis://a/b", "--create"]).exit_code == 2
    assert runner.invoke(cli, ["ingest", "kinesis://s", "--from", "yesterday"]).exit_code == 2
    assert runner.invoke(cli, ["ingest", "kinesis://s", "landing/"]).exit_code == 2


def _follow(stream: str, env: dict[str, str], out: Path) -> subprocess.Popen[bytes]:
    """A follower writing its JSON lines to ``out``, once it has started (imports take
    seconds on a loaded machine: the first line says it is following)."""
    cmd = [sys.executable, "-m", "lakehouse.cli.main", "ingest", f"kinesis://{stream}"]
    cmd += ["--follow", "--poll", "0.2", "--json", "--create"]
    with out.open("wb") as stdout, out.with_suffix(".err").open("wb") as stderr:
        proc = subprocess.Popen(cmd, env=env, stdout=stdout, stderr=stderr)
    deadline = time.monotonic() + 120
    while not out.read_bytes().strip():
        assert proc.poll() is None, out.with_suffix(".err").read_text()[-3000:]
        assert time.monotonic() < deadline, "the follower did not start"
        time.sleep(0.2)
    assert json.loads(out.read_bytes().splitlines()[0])["following"] is True
    return proc


def _caught_up(settings: Settings, feeder: Feeder, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            check_exactly_once(settings, feeder)
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1.0)


@pytest.mark.slow
def test_follow_killed_at_random_while_resharding_lands_every_event_once(
    sqlite_settings: Settings, feeder: Feeder, home: Path, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "LAKEHOUSE_HOME": str(home),
        "LAKEHOUSE_BUFFER_MAX_RECORDS": "40",
        "LAKEHOUSE_BUFFER_MAX_AGE": "1s",
    }
    rng = random.Random(1616)
    started = datetime.now(UTC)
    feeder.put_mixed(150)
    kills = 0
    for round_ in range(7):
        proc = _follow(feeder.stream, env, tmp_path / f"follow-{round_}.jsonl")
        time.sleep(rng.uniform(0.5, 4.0))
        feeder.put_mixed(rng.randint(20, 60))
        if round_ == 2:
            feeder.split()
        if round_ == 4:
            feeder.merge()
        time.sleep(rng.uniform(0.0, 2.0))
        assert proc.poll() is None, (tmp_path / f"follow-{round_}.err").read_text()[-3000:]
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
    feeder.put_mixed(30)
    last = tmp_path / "follow-last.jsonl"
    proc = _follow(feeder.stream, env, last)
    try:
        _caught_up(sqlite_settings, feeder, timeout=180)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    assert proc.returncode == 0, last.with_suffix(".err").read_text()[-3000:]
    lines = [json.loads(line) for line in last.read_text().splitlines()]
    assert any("batch" in line for line in lines)
    assert lines[-1] == {"stream": f"kinesis://{feeder.stream}", "stopped": True}
    counts = check_exactly_once(sqlite_settings, feeder, put_after=started)
    assert kills == 7 and counts["rejected"] > 0 and counts["late"] > 0

    # without --follow: reads to the tip and exits, nothing twice
    feeder.put_mixed(20)
    once = subprocess.run(
        [
            sys.executable,
            "-m",
            "lakehouse.cli.main",
            "ingest",
            f"kinesis://{feeder.stream}",
            "--json",
        ],
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert once.returncode in (0, 1), once.stderr.decode()[-3000:]
    check_exactly_once(sqlite_settings, feeder, put_after=started)


def _lines(path: Path) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.slow
def test_a_second_follower_stands_by_then_takes_over(
    sqlite_settings: Settings, feeder: Feeder, home: Path, tmp_path: Path
) -> None:
    """Two followers of one stream: the second reports standby (naming the holder) and
    writes nothing while the first runs; once the first stops (SIGTERM, lease given back)
    the second takes over and lands what comes next, every event once."""
    env = {**os.environ, "LAKEHOUSE_HOME": str(home), "LAKEHOUSE_BUFFER_MAX_AGE": "1s"}
    feeder.put_mixed(60)
    first_out, second_out = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    first = _follow(feeder.stream, env, first_out)
    second = None
    try:
        _caught_up(sqlite_settings, feeder, timeout=120)
        second = _follow(feeder.stream, env, second_out)
        deadline = time.monotonic() + 60
        while not any("standby" in line for line in _lines(second_out)):
            assert time.monotonic() < deadline, second_out.with_suffix(".err").read_text()[-3000:]
            time.sleep(0.3)
        standby = next(line for line in _lines(second_out) if "standby" in line)
        assert "ingest lease" in standby["standby"], standby
        assert not any("batch" in line for line in _lines(second_out))

        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=60) == 0, first_out.with_suffix(".err").read_text()[-3000:]
        feeder.put_mixed(40)  # only the second can land these
        _caught_up(sqlite_settings, feeder, timeout=120)
        assert any("batch" in line for line in _lines(second_out))
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=60)
    assert second is not None and second.returncode == 0
    assert _lines(second_out)[-1] == {"stream": f"kinesis://{feeder.stream}", "stopped": True}
    check_exactly_once(sqlite_settings, feeder)


_SIGTERM_WHILE_OPENING = """
import os, signal, sys
import lakehouse.tables
from lakehouse.cli.main import cli

real = lakehouse.tables.open_tables

def open_tables(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGTERM)  # arrives while the tables open
    return real(*args, **kwargs)

lakehouse.tables.open_tables = open_tables
cli.main(sys.argv[1:], prog_name="lakehouse")
"""


def test_sigterm_while_a_follower_starts_is_a_clean_stop(
    sqlite_settings: Settings, feeder: Feeder, home: Path
) -> None:
    """SIGTERM before the follower has opened its tables (a slow catalog, a deploy that
    stops what it just started) stops it cleanly: exit 0, the stopped line, nothing read."""
    env = {**os.environ, "LAKEHOUSE_HOME": str(home)}
    feeder.put_mixed(10)
    args = ["ingest", f"kinesis://{feeder.stream}", "--follow", "--json", "--create"]
    done = subprocess.run(
        [sys.executable, "-c", _SIGTERM_WHILE_OPENING, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert lines[0]["following"] is True
    assert lines[-1] == {"stream": f"kinesis://{feeder.stream}", "stopped": True}
    assert not any("batch" in line for line in lines)
