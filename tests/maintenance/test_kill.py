"""Killing maintenance mid-run leaves a readable table; the next run completes the work.
SIGTERM stops ``serve`` gracefully."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pyiceberg.table import Table

from catalog import open_catalog
from lakehouse.settings import Settings
from maintenance import KIND_COMPACTION, LEASE_PROPERTY
from maintenance.paths import canonical
from tests.maintenance.assertions import assert_compacted
from tests.maintenance.builders import Fed, feed, multiset, table_rows
from tests.maintenance.test_expire import files_on_disk, referenced

pytestmark = pytest.mark.slow
CLI = [sys.executable, "-m", "lakehouse.cli.main", "maintain"]
HOURS = 24  # one group each: a run long enough to be killed part-way


def _compactions(settings: Settings) -> int:
    table = open_catalog(settings).load_table(settings.table.identifier)
    return sum(
        1
        for s in table.snapshots()
        if s.summary and s.summary.get("lakehouse.kind") == KIND_COMPACTION
    )


def _wait_for(predicate: object, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


@pytest.fixture
def big_fed(sqlite_settings: Settings, sqlite_events: Table) -> tuple[Table, Fed]:
    return sqlite_events, feed(sqlite_events, hours=HOURS, batches_per_hour=6, batch_size=20)


def test_sigkill_mid_run_leaves_a_readable_table_and_the_next_run_finishes(
    sqlite_settings: Settings, big_fed: tuple[Table, Fed]
) -> None:
    table, data = big_fed
    ids = {r["event_id"] for r in data.rows}
    run = [
        *CLI,
        "run",
        "--json",
        "--snapshot-retention",
        "0s",
        "--orphan-retention",
        "0s",
        "--force",
        "--lease-ttl",
        "2s",
    ]
    proc = subprocess.Popen(run, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_for(lambda: _compactions(sqlite_settings) >= 2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    table.refresh()
    assert 2 <= _compactions(sqlite_settings) < HOURS  # killed part-way
    rows = table_rows(table)  # readable
    assert {r["event_id"] for r in rows} == ids  # nothing lost
    assert set(multiset(rows)) <= set(multiset(data.rows))  # nothing invented
    assert LEASE_PROPERTY in table.properties  # the dead run's lease is left behind ...
    time.sleep(2.1)  # ... and expires
    done = subprocess.run(run, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["ok"] and result["compaction"]["groups_committed"] >= 1
    assert_compacted(table, data)
    table.refresh()
    # Whatever the killed run had written and not committed is gone too.
    assert files_on_disk(table) - {str(Path(canonical(p))) for p in referenced(table)} == set()
    assert LEASE_PROPERTY not in table.properties


def test_sigterm_stops_serve_gracefully(
    sqlite_settings: Settings, big_fed: tuple[Table, Fed]
) -> None:
    table, data = big_fed
    proc = subprocess.Popen(
        [*CLI, "serve", "--every", "1h", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(lambda: _compactions(sqlite_settings) >= 1)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, err
    run = json.loads(out.splitlines()[-1])
    assert run["compaction"]["stopped"] is True or run["compaction"]["groups_committed"] == HOURS
    table.refresh()
    assert LEASE_PROPERTY not in table.properties  # released on the way out
    assert {r["event_id"] for r in table_rows(table)} == {r["event_id"] for r in data.rows}
    # The next run picks up the rest.
    done = subprocess.run([*CLI, "run", "--json"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert_compacted(table, data)


def test_sigterm_stops_a_run_after_the_current_group(
    sqlite_settings: Settings, big_fed: tuple[Table, Fed]
) -> None:
    table, data = big_fed
    proc = subprocess.Popen(
        [*CLI, "run", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        _wait_for(lambda: _compactions(sqlite_settings) >= 1)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, err
    result = json.loads(out)
    assert result["ok"] and (
        result["compaction"]["stopped"] or result["compaction"]["groups_committed"] == HOURS
    )
    if result["compaction"]["stopped"]:
        assert result["expiry"] is None and result["orphans"] is None  # later jobs skipped
    table.refresh()
    assert LEASE_PROPERTY not in table.properties
    assert {r["event_id"] for r in table_rows(table)} == {r["event_id"] for r in data.rows}
