"""A ``lakehouse ingest --follow`` subprocess and the landing files the tests drop for it.

The follower is the real CLI (``python -m lakehouse.cli.main``), its stdout (one JSON
object per cycle) and stderr going to files the test reads while it runs. Event ids are
made by the test and kept as the oracle; the table is read back independently.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from catalog import open_catalog
from lakehouse.settings import Settings
from lakehouse.tables import EventTables, load_tables

STARTUP = 180.0
"""Seconds a follower may take to start and do its first cycle (a busy 2-core machine)."""


def event_line(event_id: str, minute: int = 0) -> str:
    client = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2, minutes=minute % 90)
    return json.dumps(
        {
            "event_id": event_id,
            "user_id": f"u{hash(event_id) % 7}",
            "event_type": "view",
            "client_ts": client.isoformat().replace("+00:00", "Z"),
        }
    )


def write_file(
    path: Path, ids: Iterable[str], *, bad_lines: Iterable[str] = (), gz: bool = False
) -> None:
    """NDJSON (gzipped when ``gz``), ``bad_lines`` after the events; the file's
    modification time set a minute back, so it is settled at once."""
    body = "".join(event_line(i, n) + "\n" for n, i in enumerate(ids))
    body += "".join(line + "\n" for line in bad_lines)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = body.encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    past = time.time() - 60
    os.utime(path, (past, past))


class Follower:
    """``lakehouse ingest ZONE --follow --json ...`` running in the background."""

    def __init__(self, zone: Path | str, out: Path, *args: str, env: dict[str, str] | None = None):
        self.out = out
        out.mkdir(parents=True, exist_ok=True)
        n = len(list(out.glob("stdout-*")))
        self.stdout_path = out / f"stdout-{n}.jsonl"
        self.stderr_path = out / f"stderr-{n}.txt"
        cmd = [sys.executable, "-m", "lakehouse.cli.main", "ingest", str(zone), "--follow"]
        cmd += ["--json", *args]
        self.stdout = self.stdout_path.open("wb")
        self.stderr = self.stderr_path.open("wb")
        self.proc = subprocess.Popen(
            cmd, stdout=self.stdout, stderr=self.stderr, env=env or dict(os.environ)
        )

    def cycles(self) -> list[dict[str, Any]]:
        lines = self.stdout_path.read_text().splitlines()
        complete = lines if self.stdout_path.read_text().endswith("\n") else lines[:-1]
        return [json.loads(line) for line in complete if line.strip()]

    def files(self) -> int:
        return sum(c["files"] for c in self.cycles())

    def stderr_text(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def wait_for(
        self, what: str, done: Callable[[], bool], timeout: float = STARTUP, poll: float = 0.2
    ) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"follower exited ({self.proc.returncode}) while waiting for {what}:\n"
                    + self.stderr_text()[-3000:]
                )
            if time.monotonic() > deadline:
                last = self.cycles()[-3:]
                raise AssertionError(
                    f"timed out waiting for {what}; last cycles {last}:\n"
                    + self.stderr_text()[-3000:]
                )
            time.sleep(poll)

    def wait_files(self, total: int, timeout: float = STARTUP) -> None:
        self.wait_for(f"{total} files ingested", lambda: self.files() >= total, timeout)

    def wait_cycle_after(self, moment: datetime, timeout: float = STARTUP) -> None:
        """Until a cycle that started after ``moment`` has finished."""

        def seen() -> bool:
            return any(datetime.fromisoformat(c["started_at"]) > moment for c in self.cycles())

        self.wait_for(f"a cycle after {moment.isoformat()}", seen, timeout)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 120) -> int:
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self.close()

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=60)
        self.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=60)
        self.stdout.close()
        self.stderr.close()


def tables(home: Path) -> EventTables:
    settings = Settings.from_env(home=str(home))
    return load_tables(open_catalog(settings), settings.table)


def stored(table: Any, column: str) -> list[Any]:
    table.refresh()
    if table.current_snapshot() is None:
        return []
    result: pa.Table = table.scan(selected_fields=(column,)).to_arrow()
    return result.column(column).to_pylist()


def assert_exactly_once(home: Path, expected: set[str]) -> list[str]:
    """Every expected event once and nothing else; returns the stored ids."""
    ids = stored(tables(home).events, "event_id")
    doubled = len(ids) - len(set(ids))
    assert doubled == 0, f"{doubled} event(s) committed twice"
    missing = expected - set(ids)
    assert not missing, f"{len(missing)} event(s) lost, e.g. {sorted(missing)[:5]}"
    extra = set(ids) - expected
    assert not extra, f"unexpected events: {sorted(extra)[:5]}"
    return ids
