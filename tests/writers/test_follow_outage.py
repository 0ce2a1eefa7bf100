"""Outages a follower lives through: the catalog database locked by another process, and
S3 answering every request with 503 (a proxy in front of the moto server). The failed
cycles are reported (JSON on stdout and stderr), retried with a growing wait, and once
the outage ends every event lands exactly once; SIGTERM then exits 0."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.aws.conftest import bucket, moto_server  # noqa: F401  (fixtures)
from tests.aws.test_s3 import s3_catalog_env
from tests.support.faults import FaultPlan, fault_proxy
from tests.support.moto import MotoServer
from tests.writers.follow_support import Follower, assert_exactly_once, event_line, write_file

pytestmark = pytest.mark.slow


def failed_cycles(follower: Follower) -> list[dict]:  # type: ignore[type-arg]
    return [c for c in follower.cycles() if c["errors"]]


def test_a_locked_catalog_database_is_survived(home: Path, tmp_path: Path) -> None:
    zone = tmp_path / "landing"
    expected: set[str] = set()

    def wave(n: int) -> None:
        for f in range(3):
            ids = [f"w{n}-f{f}-{i}" for i in range(50)]
            expected.update(ids)
            write_file(zone / f"{n:02d}" / f"part-{f}.ndjson", ids)

    wave(1)
    follower = Follower(zone, tmp_path / "out", "--create", "--every", "1s", "--settle", "1s")
    try:
        follower.wait_files(3)
        db = sqlite3.connect(home / "catalog.db", timeout=30, isolation_level=None)
        db.execute("BEGIN EXCLUSIVE")  # another process holds the catalog's write lock
        try:
            wave(2)
            follower.wait_for("two failed cycles", lambda: len(failed_cycles(follower)) >= 2)
        finally:
            db.execute("ROLLBACK")
            db.close()
        follower.wait_files(6)
        follower.wait_cycle_after(datetime.now(UTC))
        code = follower.stop()
    finally:
        follower.close()
    assert code == 0, follower.stderr_text()
    assert_exactly_once(home, expected)
    failed = failed_cycles(follower)
    assert {e["type"] for c in failed for e in c["errors"]} == {"CatalogUnavailable"}
    assert all(e["retryable"] for c in failed for e in c["errors"])
    waits = [c["next_in"] for c in failed]
    assert waits[1] > waits[0], f"no back-off: {waits}"
    errors_on_stderr = [
        json.loads(line)
        for line in follower.stderr_text().splitlines()
        if line.startswith("{") and "CatalogUnavailable" in line
    ]
    assert len(errors_on_stderr) == len(failed)
    assert "Traceback" not in follower.stderr_text()


@pytest.fixture
def plan() -> FaultPlan:
    return FaultPlan()


@pytest.fixture
def proxied(moto_server: MotoServer, plan: FaultPlan) -> Iterator[str]:  # noqa: F811
    with fault_proxy(moto_server.endpoint, plan) as endpoint:
        yield endpoint


@pytest.mark.aws
def test_an_s3_outage_is_survived(
    moto_server: MotoServer,  # noqa: F811
    bucket: str,  # noqa: F811
    proxied: str,
    plan: FaultPlan,
    home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Landing zone and warehouse on S3, reached through the proxy; during the outage
    every request gets 503 SlowDown."""
    props = {
        **moto_server.s3_properties(),
        "s3.endpoint": proxied,
        "warehouse": f"s3://{bucket}/warehouse",
    }
    s3_catalog_env(monkeypatch, "lakehouse", props)
    monkeypatch.setenv("LAKEHOUSE_STORAGE_RETRIES", "2")
    monkeypatch.setenv("LAKEHOUSE_S3_ATTEMPTS", "2")  # so a failed cycle takes seconds
    s3 = moto_server.client("s3")
    expected: set[str] = set()

    def wave(n: int) -> None:
        for f in range(3):
            ids = [f"s{n}-f{f}-{i}" for i in range(50)]
            expected.update(ids)
            body = "".join(event_line(i) + "\n" for i in ids).encode()
            s3.put_object(Bucket=bucket, Key=f"landing/{n:02d}/part-{f}.ndjson", Body=body)

    wave(1)
    follower = Follower(
        f"s3://{bucket}/landing/", tmp_path / "out", "--create", "--every", "1s", "--settle", "1s"
    )
    try:
        follower.wait_files(3)
        plan.rule = lambda method, path, n: 503  # S3 is down
        wave(2)
        follower.wait_for("two failed cycles", lambda: len(failed_cycles(follower)) >= 2)
        plan.rule = lambda method, path, n: None  # and back
        follower.wait_files(6)
        follower.wait_cycle_after(datetime.now(UTC))
        code = follower.stop()
    finally:
        follower.close()
    assert code == 0, follower.stderr_text()
    assert plan.injected.get(503, 0) > 0
    failed = failed_cycles(follower)
    # what the cycles report is S3's answer, as a retryable storage error, also where
    # pyiceberg's reads of table metadata and manifests let the S3 client's OSError through
    errors = [e for c in failed for e in c["errors"]]
    messages = [e["message"] for e in errors]
    # (the proxy answers 503; a client may also see the connection it was using dropped)
    assert any(
        any(m in text for m in ("503", "SLOW_DOWN", "SlowDown", "SERVICE_UNAVAILABLE"))
        for text in messages
    ), "\n".join(messages)
    assert {e["type"] for e in errors} == {"StorageError"}, errors
    assert all(e["retryable"] for e in errors), errors
    waits = [c["next_in"] for c in failed]
    assert waits[1] > waits[0], f"no back-off: {waits}"
    assert "Traceback" not in follower.stderr_text()
    assert_exactly_once(home, expected)
