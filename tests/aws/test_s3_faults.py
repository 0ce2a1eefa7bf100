"""S3 faults: throttling and transient errors are retried; a missing bucket or denied
access gives a clear error; in every case no accepted event is lost and a re-run
completes. Faults come from a proxy in front of the emulator (tests/support/faults.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from catalog import open_catalog
from lakehouse.cli.main import cli
from lakehouse.errors import ConfigError
from lakehouse.settings import Settings
from lakehouse.tables import load_tables
from tests.aws.test_s3 import put_landing, s3_catalog_env
from tests.support.faults import FaultPlan, every_nth, fault_proxy
from tests.support.moto import MotoServer
from tests.writers.events import rows
from writers import ingest

pytestmark = pytest.mark.aws


@pytest.fixture
def plan() -> FaultPlan:
    return FaultPlan()


@pytest.fixture
def proxied(moto_server: MotoServer, plan: FaultPlan) -> Iterator[str]:
    with fault_proxy(moto_server.endpoint, plan) as endpoint:
        yield endpoint


def settings_via(
    endpoint: str, server: MotoServer, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    props = {
        **server.s3_properties(),
        "s3.endpoint": endpoint,
        "warehouse": f"s3://{bucket}/warehouse",
    }
    s3_catalog_env(monkeypatch, "lakehouse", props)
    return Settings.from_env()


def stored_ids(settings: Settings) -> list[str]:
    return (
        rows(load_tables(open_catalog(settings), settings.table).events)
        .column("event_id")
        .to_pylist()
    )


@pytest.mark.parametrize("status", [503, 500])
def test_throttling_and_server_errors_are_retried(
    status: int,
    moto_server: MotoServer,
    bucket: str,
    proxied: str,
    plan: FaultPlan,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = settings_via(proxied, moto_server, bucket, monkeypatch)
    put_landing(moto_server, bucket, files=6)
    plan.rule = every_nth(3, status, limit=8)  # one S3 request in three fails, eight times
    result = ingest([f"s3://{bucket}/landing"], settings, max_group_files=2)
    assert plan.injected.get(status, 0) >= 5, plan.injected
    assert (result.files, result.records_written) == (6, 240)
    ids = stored_ids(settings)
    assert len(ids) == len(set(ids)) == 240


def test_missing_bucket_is_a_clear_error(
    moto_server: MotoServer, bucket: str, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings_via(moto_server.endpoint, moto_server, bucket, monkeypatch)
    result = CliRunner().invoke(
        cli, ["ingest", "s3://no-such-bucket/landing", "--create", "--json"]
    )
    assert result.exit_code == 2, result.output
    error = json.loads(result.stderr)
    assert error["type"] == "ConfigError" and "'no-such-bucket' does not exist" in error["message"]


def test_missing_warehouse_bucket_then_rerun(
    moto_server: MotoServer, bucket: str, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    put_landing(moto_server, bucket, files=2)
    props = {**moto_server.s3_properties(), "warehouse": "s3://later-bucket/warehouse"}
    s3_catalog_env(monkeypatch, "lakehouse", props)
    settings = Settings.from_env()
    with pytest.raises(ConfigError, match="'later-bucket' does not exist"):
        ingest([f"s3://{bucket}/landing"], settings)
    moto_server.client("s3").create_bucket(Bucket="later-bucket")
    result = ingest([f"s3://{bucket}/landing"], settings)
    assert (result.files, result.records_written) == (2, 80)
    assert len(stored_ids(settings)) == 80


def test_access_denied_mid_ingest_then_rerun_is_exactly_once(
    moto_server: MotoServer,
    bucket: str,
    proxied: str,
    plan: FaultPlan,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = settings_via(proxied, moto_server, bucket, monkeypatch)
    put_landing(moto_server, bucket, files=6)
    uploads = {"metadata": 0}

    def deny_after_some_writes(method: str, path: str, count: int) -> int | None:
        if "/warehouse/" not in path or method not in ("PUT", "POST"):
            return None
        if uploads["metadata"] >= 5:  # 3 tables created, then the first group's events
            return 403  # and its ingest log: access is revoked from then on
        if method == "POST" and ".metadata.json?uploads" in path:
            uploads["metadata"] += 1
        return None

    plan.rule = deny_after_some_writes
    runner = CliRunner()
    denied = runner.invoke(
        cli,
        ["ingest", f"s3://{bucket}/landing", "--create", "--max-files-per-commit", "2", "--json"],
    )
    assert denied.exit_code == 2, denied.output
    assert "access denied" in json.loads(denied.stderr)["message"]
    partial = stored_ids(settings)
    assert 0 < len(partial) < 240 and len(partial) == len(set(partial))
    plan.rule = lambda method, path, count: None  # access restored
    again = runner.invoke(
        cli, ["ingest", f"s3://{bucket}/landing", "--max-files-per-commit", "2", "--json"]
    )
    assert again.exit_code == 0, again.output
    ids = stored_ids(settings)
    assert len(ids) == len(set(ids)) == 240
