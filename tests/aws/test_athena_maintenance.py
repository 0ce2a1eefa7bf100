"""The maintenance plan carried out through Athena's API (moto records the statements):
one OPTIMIZE per planned hour with the plan's range, then VACUUM; failures per hour;
dry runs send nothing. What the statements do to a table is checked on Trino
(test_athena_trino.py), since moto runs no SQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from catalog import open_catalog
from lakehouse.engines.athena import AthenaClient, AthenaConfig
from lakehouse.engines.athena.maintenance import (
    compact_with_athena,
    optimize_statements,
    run_maintenance_with_athena,
    vacuum_with_athena,
)
from lakehouse.settings import Settings, TableName
from maintenance import CompactionOptions, MaintenanceOptions, plan_compaction
from maintenance.runner import LAST_RUN_PROPERTY
from tests.aws.test_athena_helpers import recorded, use_moto_athena
from tests.support.moto import MotoServer
from writers import EventWriter

pytestmark = pytest.mark.aws

EVENTS = TableName("analytics", "events")
T0 = datetime(2026, 3, 1, 8, tzinfo=UTC)


@pytest.fixture
def athena_env(moto_server: MotoServer, home: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    return use_moto_athena(moto_server, monkeypatch)


@pytest.fixture
def table(home: Path) -> Any:
    """Three hours, each in three small files (three commits)."""
    settings = Settings.from_env()
    with EventWriter(settings, clock=lambda: T0 + timedelta(days=1)) as writer:
        for batch in range(3):
            writer.write(
                [
                    {"event_id": f"b{batch}-{i}", "user_id": f"u{i % 4}", "event_type": "view",
                     "client_ts": T0 + timedelta(minutes=7 * i + batch)}
                    for i in range(24)
                ]
            )  # fmt: skip
            writer.flush()
    return open_catalog(settings).load_table(EVENTS.identifier)


def test_plan_runs_as_optimize_per_hour_then_vacuum(athena_env: str, table: Any) -> None:
    settings = Settings.from_env()
    plan = plan_compaction(table, CompactionOptions())
    assert len(plan.groups) == 3
    expected = [s.sql for s in optimize_statements(plan, EVENTS)] + ["VACUUM analytics.events"]
    snapshots = len(table.metadata.snapshots)
    client = AthenaClient(AthenaConfig.from_env(settings))
    result = run_maintenance_with_athena(settings, MaintenanceOptions(), table=table, client=client)
    athena = boto3.client("athena", region_name=athena_env)
    sent = [
        recorded(athena_env, q)["Query"]
        for q in athena.list_query_executions()["QueryExecutionIds"]
    ]
    assert sent == expected
    assert sent[0] == (
        "OPTIMIZE analytics.events REWRITE DATA USING BIN_PACK WHERE "
        "client_ts >= TIMESTAMP '2026-03-01 08:00:00 UTC' "
        "AND client_ts < TIMESTAMP '2026-03-01 09:00:00 UTC'"
    )
    # moto runs nothing: no rewrite appears, so every group is reported skipped, not done
    assert result.ok and result.compaction is not None and result.expiry is not None
    assert (result.compaction.groups_planned, result.compaction.groups_skipped) == (3, 3)
    assert result.compaction.groups_committed == result.compaction.files_rewritten == 0
    assert {s.error_type for s in result.compaction.skipped} == {"NothingRewritten"}
    assert result.expiry.snapshots_expired == 0
    table.refresh()
    assert len(table.metadata.snapshots) == snapshots
    summary = json.loads(table.properties[LAST_RUN_PROPERTY])
    assert summary["run_id"] == result.run_id and summary["groups_skipped"] == 3


def test_a_failed_optimize_fails_its_hour_and_the_run_goes_on(athena_env: str, table: Any) -> None:
    settings = Settings.from_env()
    plan = plan_compaction(table, CompactionOptions())
    statements = optimize_statements(plan, EVENTS)
    stubbed = boto3.client("athena", region_name=athena_env)
    config = AthenaConfig.from_env(settings)
    reason = "ICEBERG_COMMIT_ERROR: Failed to commit the transaction"
    with Stubber(stubbed) as stub:
        for i, item in enumerate(statements):
            stub.add_response(
                "start_query_execution", {"QueryExecutionId": f"q{i}"},
                {"QueryString": item.sql, "ClientRequestToken": ANY, "WorkGroup": "primary",
                 "QueryExecutionContext": {"Database": "analytics", "Catalog": "AwsDataCatalog"},
                 "ResultConfiguration": {"OutputLocation": config.output_location}},
            )  # fmt: skip
            state = (
                {"State": "FAILED", "StateChangeReason": reason}
                if i == 1
                else {"State": "SUCCEEDED"}
            )
            stub.add_response(
                "get_query_execution",
                {"QueryExecution": {"QueryExecutionId": f"q{i}", "Status": state}},
            )
        stub.add_response("start_query_execution", {"QueryExecutionId": "vacuum"})
        stub.add_response(
            "get_query_execution",
            {"QueryExecution": {"QueryExecutionId": "vacuum", "Status": {"State": "SUCCEEDED"}}},
        )
        result = run_maintenance_with_athena(
            settings,
            MaintenanceOptions(),
            table=table,
            client=AthenaClient(config, client=stubbed),
        )
        stub.assert_no_pending_responses()
    assert result.compaction is not None and not result.ok
    (failure,) = result.compaction.failures
    assert (failure.group_id, failure.error_type, failure.retryable) == (
        statements[1].groups[0].group_id, "AthenaQueryFailedError", False,
    )  # fmt: skip
    assert reason in failure.message
    assert result.compaction.groups_failed == 1 and result.compaction.groups_skipped == 2
    assert result.expiry is not None  # VACUUM still ran after the failed hour


def test_dry_run_sends_nothing(athena_env: str, table: Any) -> None:
    settings = Settings.from_env()
    plan = plan_compaction(table, CompactionOptions())
    result = run_maintenance_with_athena(
        settings,
        MaintenanceOptions(dry_run=True),
        table=table,
        client=AthenaClient(AthenaConfig.from_env(settings)),
    )
    athena = boto3.client("athena", region_name=athena_env)
    assert athena.list_query_executions()["QueryExecutionIds"] == []
    assert result.dry_run and result.compaction is not None and result.compaction.dry_run
    assert (result.compaction.groups_planned, result.compaction.files_rewritten) == (3, plan.files)
    assert LAST_RUN_PROPERTY not in table.properties


def test_compact_and_vacuum_alone(athena_env: str, table: Any) -> None:
    settings = Settings.from_env()
    plan = plan_compaction(table, CompactionOptions())
    compacted = compact_with_athena(settings, plan)  # the table is opened from the settings
    vacuumed = vacuum_with_athena(settings)
    athena = boto3.client("athena", region_name=athena_env)
    sent = [
        recorded(athena_env, q)["Query"]
        for q in athena.list_query_executions()["QueryExecutionIds"]
    ]
    assert sent == [s.sql for s in optimize_statements(plan, EVENTS)] + ["VACUUM analytics.events"]
    assert (compacted.groups_planned, compacted.groups_skipped, compacted.groups_failed) == (
        3,
        3,
        0,
    )
    assert vacuumed.snapshots_expired == 0 and not vacuumed.dry_run
