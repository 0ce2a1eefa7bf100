"""Under ``--json`` every command prints each result as ONE line (JSON lines), indented only
on a terminal or with ``--pretty``: ``maintain run --json >> file.jsonl`` from cron gives a
file of valid JSON lines, ``maintain serve --json`` one line per run."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from lakehouse.cli.main import cli

HOURS = (3, 4)


def _events(tag: str, n: int) -> list[dict[str, str]]:
    return [
        {
            "event_id": f"{tag}{i}",
            "user_id": f"u{i % 4}",
            "event_type": ("open", "view", "buy")[i % 3],
            "client_ts": f"2024-05-01T{HOURS[i % 2]:02d}:{i % 60:02d}:{i % 7:02d}Z",
        }
        for i in range(n)
    ]


def _write_zone(root: Path, events: list[dict[str, str]]) -> Path:
    root.mkdir(parents=True)
    (root / "part.ndjson").write_text("".join(json.dumps(e) + "\n" for e in events))
    return root


def _lines(text: str) -> list[dict[str, Any]]:
    """Every line of ``text`` is one JSON object (and there is no other text)."""
    assert text.endswith("\n"), repr(text[-80:])
    values = [json.loads(line) for line in text.splitlines()]
    assert all(isinstance(v, dict) for v in values)
    return values


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAKEHOUSE_", "PYICEBERG_"))}
    env["LAKEHOUSE_HOME"] = str(home)
    return env


def _exe() -> str:
    exe = Path(sys.executable).with_name("lakehouse")
    assert exe.exists(), f"the project is not installed in {sys.prefix}: no {exe}"
    return str(exe)


def _funnel_oracle(events: list[dict[str, str]], steps: list[str]) -> list[int]:
    """Users reaching each step in order within a day of their first step (a plain loop
    over every user and every possible first event: no shared code with the engines)."""
    by_user: dict[str, list[tuple[datetime, str]]] = {}
    for e in events:
        ts = datetime.fromisoformat(e["client_ts"].replace("Z", "+00:00"))
        by_user.setdefault(e["user_id"], []).append((ts, e["event_type"]))
    counts = [0] * len(steps)
    for seq in by_user.values():
        seq.sort()
        best = 0
        for i, (start, kind) in enumerate(seq):
            if kind != steps[0]:
                continue
            reached = 1
            for ts, later in seq[i + 1 :]:
                if ts - start > timedelta(days=1) or reached == len(steps):
                    break
                if later == steps[reached]:
                    reached += 1
            best = max(best, reached)
        for k in range(best):
            counts[k] += 1
    return counts


def test_every_json_command_prints_one_line_and_pretty_on_request(
    home: Path, tmp_path: Path
) -> None:
    first, second = _events("a", 30), _events("b", 24)

    def one(*args: str, code: int = 0) -> dict[str, Any]:
        result = CliRunner().invoke(cli, [*args, "--json"], catch_exceptions=False)
        assert result.exit_code == code, result.output
        assert result.stdout.count("\n") == 1, result.stdout
        [value] = _lines(result.stdout)
        return value

    assert "analytics.events" in one("init")["created"]
    assert one("ingest", str(_write_zone(tmp_path / "z1", first)))["records_written"] == 30
    assert one("ingest", str(_write_zone(tmp_path / "z2", second)))["records_written"] == 24
    health = one("health")
    assert health["total_records"] == 54 and health["data_files"] == 4  # 2 commits x 2 hours
    snaps = one("snapshots")
    assert snaps["current_snapshot_id"] == snaps["snapshots"][-1]["snapshot_id"]
    assert sum(s["added_records"] or 0 for s in snaps["snapshots"]) == 54
    assert one("config", "show")["table"] == "analytics.events"
    funnel = one("funnel", "--steps", "open,view,buy", "--window", "1d")
    assert [s["users"] for s in funnel["steps"]] == _funnel_oracle(
        first + second, ["open", "view", "buy"]
    )
    plan = one("maintain", "plan")
    assert plan["hours_selected"] == 2 and plan["files_planned"] == 4
    run = one("maintain", "run")
    assert run["ok"] is True and run["files_rewritten"] == 4 and run["files_added"] == 2
    demo = one("demo", "--events", "300", "--days", "1", "--table", "analytics.demo")
    assert demo["landing"]["events"] == 300

    pretty = CliRunner().invoke(cli, ["health", "--json", "--pretty"], catch_exceptions=False)
    assert pretty.exit_code == 0 and pretty.stdout.startswith("{\n  ")
    after = json.loads(pretty.stdout)
    assert after["total_records"] == 54 and after["data_files"] == 2  # compacted
    shown = CliRunner().invoke(cli, ["config", "show", "--pretty", "--json"])
    assert shown.stdout.count("\n") > 5 and json.loads(shown.stdout) == one("config", "show")


def test_maintain_run_appended_to_a_file_gives_json_lines(home: Path, tmp_path: Path) -> None:
    env = _env(home)
    subprocess.run([_exe(), "init"], env=env, check=True, capture_output=True)
    for name, events in (("z1", _events("a", 20)), ("z2", _events("b", 20))):
        zone = _write_zone(tmp_path / name, events)
        subprocess.run([_exe(), "ingest", str(zone)], env=env, check=True, capture_output=True)

    log = tmp_path / "maintain.jsonl"
    for _ in range(2):  # as in the README's crontab line
        with log.open("a") as out:
            done = subprocess.run(
                [_exe(), "maintain", "run", "--json"],
                env=env,
                stdout=out,
                stderr=subprocess.PIPE,
                text=True,
                timeout=120,
            )
        assert done.returncode == 0, done.stderr
    runs = _lines(log.read_text())
    assert len(runs) == 2 and runs[0]["run_id"] != runs[1]["run_id"]
    assert [r["ok"] for r in runs] == [True, True]
    assert [r["files_rewritten"] for r in runs] == [4, 0]  # 2 ingests x 2 hours, then clean

    served = subprocess.run(
        [_exe(), "maintain", "serve", "--every", "0s", "--max-runs", "3", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert served.returncode == 0, served.stderr
    serve_runs = _lines(served.stdout)
    assert len(serve_runs) == 3 and len({r["run_id"] for r in serve_runs}) == 3
    assert all(r["ok"] and r["files_rewritten"] == 0 for r in serve_runs)


def test_json_is_indented_on_a_terminal_only(home: Path) -> None:
    piped = subprocess.run(
        [_exe(), "config", "show", "--json"], env=_env(home), capture_output=True, text=True
    )
    assert piped.returncode == 0 and piped.stdout.count("\n") == 1, piped.stdout
    leader, follower = pty.openpty()
    try:
        done = subprocess.run(
            [_exe(), "config", "show", "--json"],
            env=_env(home),
            stdout=follower,
            stderr=subprocess.PIPE,
            timeout=60,
        )
        os.close(follower)
        follower = -1
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the terminal's other end is closed: all read
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(leader)
        if follower >= 0:
            os.close(follower)
    assert done.returncode == 0, done.stderr
    text = b"".join(chunks).decode().replace("\r\n", "\n")
    assert text.startswith("{\n  ") and json.loads(text) == json.loads(piped.stdout)
