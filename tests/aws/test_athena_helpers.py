"""Helpers for the Athena tests (no tests here): a stubbed boto3 client with a fake clock;
on moto, the AWS environment of a test, canned query results, slow executions, what moto
recorded."""

from __future__ import annotations

import itertools
import json
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import ANY

from lakehouse.engines.athena import AthenaClient, AthenaConfig
from tests.support.moto import ACCESS_KEY, SECRET_KEY, MotoServer

OUTPUT = "s3://athena-results/queries/"
# moto keeps one queue of canned results per region: each test takes a fresh region, so
# a result one test queued and did not use never reaches another test.
_REGIONS = itertools.cycle(
    [
        "eu-west-1", "eu-west-2", "eu-west-3", "eu-central-1", "eu-north-1", "eu-south-1",
        "ap-southeast-1", "ap-southeast-2", "ap-northeast-1", "ap-northeast-2", "ap-south-1",
        "ca-central-1", "sa-east-1", "us-west-1", "us-west-2", "us-east-2", "af-south-1",
        "me-south-1", "ap-east-1", "eu-central-2",
    ]
)  # fmt: skip


def use_moto_athena(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """Set the standard AWS variables to moto, in a region of this test's own, and
    ``LAKEHOUSE_ATHENA_OUTPUT``; returns the region."""
    region = next(_REGIONS)
    for key, value in {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
        "AWS_ENDPOINT_URL": moto_server.endpoint,
        "LAKEHOUSE_ATHENA_OUTPUT": OUTPUT,
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return region


def _post(server: MotoServer, path: str, body: dict[str, Any]) -> None:
    request = urllib.request.Request(
        f"{server.endpoint}{path}",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(request, timeout=10).read()


def queue_result(
    server: MotoServer, region: str, columns: list[tuple[str, str]], rows: list[list[str | None]]
) -> None:
    """Queue what the next query in ``region`` returns (with the header row a SELECT has)."""
    data = [[name for name, _ in columns], *rows]
    _post(
        server,
        "/moto-api/static/athena/query-results",
        {
            "region": region,
            "results": [
                {
                    "rows": [
                        {"Data": [{} if v is None else {"VarCharValue": v} for v in row]}
                        for row in data
                    ],
                    "column_info": [{"Name": n, "Type": t} for n, t in columns],
                }
            ],
        },
    )


@contextmanager
def slow_queries(server: MotoServer, polls_per_state: int) -> Iterator[None]:
    """Each execution stays QUEUED, then RUNNING, for ``polls_per_state`` polls."""
    _post(
        server,
        "/moto-api/state-manager/set-transition",
        {
            "model_name": "athena::execution",
            "transition": {"progression": "manual", "times": polls_per_state},
        },
    )
    try:
        yield
    finally:
        _post(
            server, "/moto-api/state-manager/unset-transition", {"model_name": "athena::execution"}
        )


def recorded(region: str, query_id: str) -> dict[str, Any]:
    """What moto stored about an execution (the query, context, parameters)."""
    client = boto3.client("athena", region_name=region)
    return dict(client.get_query_execution(QueryExecutionId=query_id)["QueryExecution"])


# -- a stubbed client ---------------------------------------------------------------------

QID = "11111111-2222-3333-4444-555555555555"
STUB_OUTPUT = "s3://results-bucket/athena/"


class FakeTime:
    """A clock that only moves when the client sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        self.now += seconds

    def clock(self) -> float:
        return self.now


def make_client(
    boto_client: Any, fake_time: FakeTime, *, timeout: timedelta = timedelta(minutes=30)
) -> AthenaClient:
    config = AthenaConfig(
        output_location=STUB_OUTPUT, workgroup="analysts", database="analytics", timeout=timeout
    )
    return AthenaClient(config, client=boto_client, sleep=fake_time.sleep, clock=fake_time.clock)


def start_request(sql: str, params: list[str] | None = None) -> dict[str, Any]:
    request: dict[str, Any] = {
        "QueryString": sql,
        "ClientRequestToken": ANY,
        "WorkGroup": "analysts",
        "QueryExecutionContext": {"Database": "analytics", "Catalog": "AwsDataCatalog"},
        "ResultConfiguration": {"OutputLocation": STUB_OUTPUT},
    }
    if params is not None:
        request["ExecutionParameters"] = params
    return request


def execution(state: str, **status: Any) -> dict[str, Any]:
    return {
        "QueryExecution": {
            "QueryExecutionId": QID,
            "StatementType": "DML",
            "ResultConfiguration": {"OutputLocation": f"{STUB_OUTPUT}{QID}.csv"},
            "Status": {"State": state, **status},
            "Statistics": {
                "DataScannedInBytes": 1234,
                "EngineExecutionTimeInMillis": 50,
                "TotalExecutionTimeInMillis": 80,
                "QueryQueueTimeInMillis": 7,
            },
        }
    }


def cells(*values: str | None) -> dict[str, Any]:
    return {"Data": [{} if v is None else {"VarCharValue": v} for v in values]}


COLUMNS = [
    {"Name": "event_type", "Type": "varchar"},
    {"Name": "n", "Type": "bigint"},
]


def page(rows: list[dict[str, Any]], token: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "ResultSet": {"Rows": rows, "ResultSetMetadata": {"ColumnInfo": COLUMNS}},
        "UpdateCount": 0,
    }
    if token:
        out["NextToken"] = token
    return out


def stub_client(region: str = "eu-west-1") -> Any:
    return boto3.client(
        "athena",
        region_name=region,
        aws_access_key_id="stub",
        aws_secret_access_key="stub-secret",
    )
