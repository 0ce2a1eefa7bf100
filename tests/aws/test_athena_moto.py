"""The Athena client, CLI, view and funnel engine against moto's Athena API (a server on
127.0.0.1): polling through QUEUED/RUNNING (moto's state manager), results queued through
moto's ``/moto-api/static/athena/query-results``, and the exact queries and execution
parameters moto recorded. moto runs no SQL: the SQL itself is checked on Trino
(test_athena_trino.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber
from click.testing import CliRunner

from catalog import open_catalog
from lakehouse.cli.main import cli as lakehouse_cli
from lakehouse.engines.athena import AthenaClient, AthenaConfig, run_query
from lakehouse.engines.athena.funnel import ENGINE_PATH, athena_funnel_query
from lakehouse.engines.athena.sql import execution_parameters
from lakehouse.engines.athena.views import ordered_view_statement
from lakehouse.funnels import engines
from lakehouse.funnels.engines import FunnelRequest, run_funnel
from lakehouse.settings import Settings, TableName
from tests.aws.test_athena_helpers import (
    OUTPUT,
    queue_result,
    recorded,
    slow_queries,
    use_moto_athena,
)
from tests.support.moto import MotoServer
from writers import EventWriter

pytestmark = pytest.mark.aws

EVENTS = TableName("analytics", "events")


@pytest.fixture
def athena_env(moto_server: MotoServer, home: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    return use_moto_athena(moto_server, monkeypatch)


def test_client_polls_through_queued_and_running(athena_env: str, moto_server: MotoServer) -> None:
    queue_result(
        moto_server,
        athena_env,
        [("event_type", "varchar"), ("n", "bigint"), ("first", "timestamp with time zone")],
        [["view", "12", "2026-03-01 08:00:00.000001 UTC"], ["click", "3", None]],
    )
    sleeps: list[float] = []
    client = AthenaClient(AthenaConfig.from_env(Settings.from_env()), sleep=sleeps.append)
    states: list[str] = []
    client.client.meta.events.register(
        "after-call.athena.GetQueryExecution",
        lambda parsed, **_: states.append(parsed["QueryExecution"]["Status"]["State"]),
    )
    with slow_queries(moto_server, 2):
        result = run_query(
            "SELECT event_type, count(*) AS n, min(client_ts) AS first FROM events "
            "WHERE user_id = ? GROUP BY 1",
            ["o'brien"],
            client=client,
        )
    assert states == ["QUEUED", "RUNNING", "RUNNING", "SUCCEEDED"]
    assert sleeps == pytest.approx([0.2, 0.3, 0.45])
    assert result.rows() == [
        ("view", 12, datetime(2026, 3, 1, 8, 0, 0, 1, tzinfo=UTC)),
        ("click", 3, None),
    ]
    sent = recorded(athena_env, result.query_id)
    assert sent["Query"].endswith("WHERE user_id = ? GROUP BY 1")
    assert sent["ExecutionParameters"] == ["'o''brien'"]
    assert sent["QueryExecutionContext"] == {"Database": "analytics", "Catalog": "AwsDataCatalog"}
    assert sent["WorkGroup"] == "primary"
    assert sent["ResultConfiguration"]["OutputLocation"] == f"{OUTPUT}{result.query_id}.csv"


def test_cli_sql_prints_json_and_text(athena_env: str, moto_server: MotoServer) -> None:
    runner = CliRunner()
    queue_result(
        moto_server,
        athena_env,
        [("day", "date"), ("amount", "decimal(10,2)")],
        [["2026-03-01", "12.50"]],
    )
    out = runner.invoke(
        lakehouse_cli,
        ["athena", "sql", "SELECT day, amount FROM t WHERE k = ?", "--param", "it's", "--json"],
    )
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    assert doc["rows"] == [{"day": "2026-03-01", "amount": "12.50"}]
    assert doc["types"] == ["date", "decimal(10,2)"] and doc["row_count"] == 1
    assert recorded(athena_env, doc["query_id"])["ExecutionParameters"] == ["'it''s'"]

    queue_result(
        moto_server,
        athena_env,
        [("event_type", "varchar"), ("n", "bigint")],
        [["view", "7"], [None, "0"]],
    )
    out = runner.invoke(
        lakehouse_cli,
        ["athena", "sql", "-", "--database", "other", "--workgroup", "primary"],
        input="SELECT 1;\n",
    )
    assert out.exit_code == 0, out.output
    lines = out.stdout.splitlines()
    assert "event_type" in lines[0] and "view" in out.stdout and "NULL" in out.stdout
    assert "(2 rows," in out.stderr
    query_id = out.stderr.rsplit("query ", 1)[1].rstrip(")\n")
    sent = recorded(athena_env, query_id)
    assert sent["Query"] == "SELECT 1" and sent["QueryExecutionContext"]["Database"] == "other"


def test_cli_errors_and_exit_codes(
    athena_env: str, moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    out = runner.invoke(
        lakehouse_cli, ["athena", "sql", "SELECT 1", "--workgroup", "missing", "--json"]
    )
    assert out.exit_code == 1
    error = json.loads(out.stderr)
    assert error["type"] == "AthenaError" and "WorkGroup does not exist" in error["message"]

    monkeypatch.delenv("LAKEHOUSE_ATHENA_OUTPUT")
    out = runner.invoke(lakehouse_cli, ["athena", "sql", "SELECT 1", "--json"])
    assert out.exit_code == 2
    error = json.loads(out.stderr)
    assert error["type"] == "AthenaConfigError"
    assert error["message"].startswith("LAKEHOUSE_ATHENA_OUTPUT is not set")
    out = runner.invoke(lakehouse_cli, ["athena", "views", "--output", "/tmp/x"])
    assert out.exit_code == 2 and "is not an s3://bucket/prefix/ location" in out.stderr

    # FAILED cannot come from moto: a stubbed client gives Athena's answer
    stubbed = boto3.client("athena", region_name=athena_env)
    reason = "SYNTAX_ERROR: line 1:8: Column 'nope' cannot be resolved"
    monkeypatch.setattr("lakehouse.engines.athena.client.boto3_athena_client", lambda: stubbed)
    with Stubber(stubbed) as stub:
        stub.add_response("start_query_execution", {"QueryExecutionId": "q-1"})
        stub.add_response(
            "get_query_execution",
            {
                "QueryExecution": {
                    "QueryExecutionId": "q-1",
                    "Status": {"State": "FAILED", "StateChangeReason": reason},
                }
            },
        )
        out = runner.invoke(lakehouse_cli, ["athena", "sql", "SELECT nope", "--output", OUTPUT])
    assert out.exit_code == 1
    assert out.stderr.strip() == f"error: Athena query q-1 ended FAILED: {reason}"


PROBE = [
    ("event_id", "varchar"),
    ("user_id", "varchar"),
    ("event_type", "varchar"),
    ("client_ts", "timestamp with time zone"),
    ("server_ts", "timestamp with time zone"),
    ("session_id", "varchar"),
    ("properties", "varchar"),
    ("platform", "varchar"),
]


def test_cli_views_sends_the_view_ddl(athena_env: str, moto_server: MotoServer) -> None:
    queue_result(moto_server, athena_env, PROBE, [])
    out = CliRunner().invoke(lakehouse_cli, ["athena", "views", "--json"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    assert doc["view"] == "analytics.events_ordered" and doc["table"] == "analytics.events"
    assert doc["columns"] == [n for n, _ in PROBE] + [
        "event_seq",
        "prev_event_type",
        "millis_since_prev",
    ]
    assert doc["utc_columns"] == ["client_ts", "server_ts"]
    executions = boto3.client("athena", region_name=athena_env).list_query_executions()
    queries = [recorded(athena_env, q)["Query"] for q in executions["QueryExecutionIds"]]
    assert queries == [
        'SELECT * FROM "analytics"."events" LIMIT 0',
        ordered_view_statement(EVENTS, PROBE),
    ]
    assert recorded(athena_env, doc["query_id"])["StatementType"] == "DDL"


def _write_events(settings: Settings) -> int:
    t0 = datetime(2026, 3, 1, 8, tzinfo=UTC)
    with EventWriter(settings, clock=lambda: t0 + timedelta(days=1)) as writer:
        writer.write(
            [
                {"event_id": f"e{i}", "user_id": f"u{i % 3}", "event_type": ("view", "click")[i % 2],
                 "client_ts": t0 + timedelta(minutes=i)}
                for i in range(12)
            ]
        )  # fmt: skip
    snapshot = open_catalog(settings).load_table(EVENTS.identifier).current_snapshot()
    assert snapshot is not None
    return snapshot.snapshot_id


def test_funnel_engine_sends_steps_as_parameters(
    athena_env: str, moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings.from_env()
    snapshot_id = _write_events(settings)
    monkeypatch.setitem(engines.ENGINES, "athena", ENGINE_PATH)
    request = FunnelRequest(steps=("view", "click", "buy it's"), window=timedelta(hours=1))
    queue_result(
        moto_server,
        athena_env,
        [("users_1", "bigint"), ("users_2", "bigint"), ("users_3", "bigint")],
        [["3", "2", "0"]],
    )
    result = run_funnel(settings, request, engine="athena")
    assert [s.users for s in result.steps] == [3, 2, 0]
    assert [s.conversion_from_previous for s in result.steps] == [1.0, 2 / 3, 0.0]
    assert (result.engine, result.snapshot_id, result.mode) == ("athena", snapshot_id, "window")
    (query_id,) = boto3.client("athena", region_name=athena_env).list_query_executions()[
        "QueryExecutionIds"
    ]
    sent = recorded(athena_env, query_id)
    sql, params = athena_funnel_query(request, EVENTS, snapshot_id=snapshot_id)
    assert sent["Query"] == sql and "buy it" not in sql
    assert sent["ExecutionParameters"] == execution_parameters(params)
    assert sent["ExecutionParameters"][:3] == ["'view'", "'click'", "'buy it''s'"]


def test_funnel_cli_engine_athena(athena_env: str, moto_server: MotoServer) -> None:
    from lakehouse.cli.funnel_cmd import funnel as cli

    engine = next(p for p in cli.params if p.name == "engine")
    if "athena" not in engine.type.choices:  # type: ignore[attr-defined]
        pytest.skip("lakehouse.funnels.engines.ENGINES has no 'athena' entry yet")
    _write_events(Settings.from_env())
    queue_result(
        moto_server, athena_env, [("users_1", "bigint"), ("users_2", "bigint")], [["3", "1"]]
    )
    out = CliRunner().invoke(
        lakehouse_cli,
        ["funnel", "--engine", "athena", "--steps", "view,click", "--window", "1h", "--json"],
    )
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    assert [s["users"] for s in doc["steps"]] == [3, 1] and doc["engine"] == "athena"
    # strict mode (like any option) runs the SQL engines' shared query, whose rows are
    # (part, g, k, users, median_us)
    queue_result(
        moto_server,
        athena_env,
        [
            ("part", "integer"),
            ("g", "varchar"),
            ("k", "bigint"),
            ("users", "bigint"),
            ("median_us", "double"),
        ],
        [["0", None, "1", "4", "0.0"], ["0", None, "2", "2", "1500000.0"]],
    )
    out = CliRunner().invoke(
        lakehouse_cli,
        ["funnel", "--engine", "athena", "--steps", "a,b", "--mode", "strict", "--json"],
    )
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    assert doc["mode"] == "strict"
    assert [(s["users"], s["median_seconds_to_step"]) for s in doc["steps"]] == [(4, 0.0), (2, 1.5)]
