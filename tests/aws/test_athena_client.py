"""The Athena client against botocore's Stubber: exact requests, polling and backoff,
throttling, FAILED/CANCELLED reasons, timeouts, multi-page results, typed values."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import boto3
import pyarrow as pa
import pytest
from botocore.stub import ANY, Stubber

from lakehouse.athena import (
    AthenaClient,
    AthenaConfig,
    AthenaConfigError,
    AthenaError,
    AthenaQueryCancelledError,
    AthenaQueryFailedError,
    AthenaThrottledError,
    AthenaTimeoutError,
    Backoff,
)
from lakehouse.settings import Settings, TableName

QID = "11111111-2222-3333-4444-555555555555"
OUTPUT = "s3://results-bucket/athena/"


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


@pytest.fixture
def boto_client() -> Any:
    return boto3.client(
        "athena",
        region_name="eu-west-1",
        aws_access_key_id="stub",
        aws_secret_access_key="stub-secret",
    )


@pytest.fixture
def stub(boto_client: Any) -> Iterator[Stubber]:
    with Stubber(boto_client) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


def make_client(
    boto_client: Any, fake_time: FakeTime, *, timeout: timedelta = timedelta(minutes=30)
) -> AthenaClient:
    config = AthenaConfig(
        output_location=OUTPUT, workgroup="analysts", database="analytics", timeout=timeout
    )
    return AthenaClient(config, client=boto_client, sleep=fake_time.sleep, clock=fake_time.clock)


def start_request(sql: str, params: list[str] | None = None) -> dict[str, Any]:
    request: dict[str, Any] = {
        "QueryString": sql,
        "ClientRequestToken": ANY,
        "WorkGroup": "analysts",
        "QueryExecutionContext": {"Database": "analytics", "Catalog": "AwsDataCatalog"},
        "ResultConfiguration": {"OutputLocation": OUTPUT},
    }
    if params is not None:
        request["ExecutionParameters"] = params
    return request


def execution(state: str, **status: Any) -> dict[str, Any]:
    return {
        "QueryExecution": {
            "QueryExecutionId": QID,
            "StatementType": "DML",
            "ResultConfiguration": {"OutputLocation": f"{OUTPUT}{QID}.csv"},
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


def test_start_poll_and_multi_page_results(
    stub: Stubber, boto_client: Any, fake_time: FakeTime
) -> None:
    sql = "SELECT event_type, count(*) AS n FROM events WHERE user_id = ? GROUP BY 1"
    stub.add_response(
        "start_query_execution",
        {"QueryExecutionId": QID},
        start_request(sql, ["'it''s u1'"]),
    )
    for state in ("QUEUED", "QUEUED", "RUNNING", "SUCCEEDED"):
        stub.add_response("get_query_execution", execution(state), {"QueryExecutionId": QID})
    stub.add_response(
        "get_query_results",
        page([cells("event_type", "n"), cells("view", "10"), cells("click", "4")], "token-1"),
        {"QueryExecutionId": QID, "MaxResults": 1000},
    )
    stub.add_response(
        "get_query_results",
        page([cells("purchase", "1"), cells(None, None)], "token-2"),
        {"QueryExecutionId": QID, "MaxResults": 1000, "NextToken": "token-1"},
    )
    stub.add_response(
        "get_query_results",
        page([cells("", "0")]),
        {"QueryExecutionId": QID, "MaxResults": 1000, "NextToken": "token-2"},
    )
    result = make_client(boto_client, fake_time).execute(sql, ["it's u1"])

    assert fake_time.sleeps == [0.2, 0.3, 0.45]  # exponential backoff between the 4 polls
    assert result.query_id == QID
    assert result.polls == 4 and result.pages == 3
    assert result.columns == ("event_type", "n") and result.types == ("varchar", "bigint")
    # the header row is dropped from the first page only; NULL and '' stay distinct
    assert result.rows() == [("view", 10), ("click", 4), ("purchase", 1), (None, None), ("", 0)]
    assert result.to_arrow().schema == pa.schema([("event_type", pa.string()), ("n", pa.int64())])
    assert result.to_polars()["n"].sum() == 15
    assert result.stats.data_scanned_bytes == 1234 and result.stats.queue_ms == 7
    assert result.to_dict()["rows"][0] == {"event_type": "view", "n": 10}


def test_a_first_row_equal_to_the_header_is_kept_when_not_a_select(
    stub: Stubber, boto_client: Any, fake_time: FakeTime
) -> None:
    stub.add_response(
        "start_query_execution", {"QueryExecutionId": QID}, start_request("SHOW TABLES")
    )
    done = execution("SUCCEEDED")
    done["QueryExecution"]["StatementType"] = "UTILITY"
    stub.add_response("get_query_execution", done, {"QueryExecutionId": QID})
    only = [{"Name": "tab_name", "Type": "varchar"}]
    stub.add_response(
        "get_query_results",
        {
            "ResultSet": {
                "Rows": [cells("tab_name"), cells("events")],
                "ResultSetMetadata": {"ColumnInfo": only},
            }
        },
        {"QueryExecutionId": QID, "MaxResults": 1000},
    )
    result = make_client(boto_client, fake_time).execute("SHOW TABLES")
    assert result.rows() == [("tab_name",), ("events",)]
    assert fake_time.sleeps == []


@pytest.mark.parametrize("code", ["TooManyRequestsException", "ThrottlingException"])
def test_throttling_is_retried_with_backoff_on_every_call(
    code: str, stub: Stubber, boto_client: Any, fake_time: FakeTime
) -> None:
    sql = "SELECT 1"
    for _ in range(2):
        stub.add_client_error(
            "start_query_execution", code, "Rate exceeded", 400, expected_params=start_request(sql)
        )
    stub.add_response("start_query_execution", {"QueryExecutionId": QID}, start_request(sql))
    stub.add_client_error(
        "get_query_execution", code, "Rate exceeded", 400, expected_params={"QueryExecutionId": QID}
    )
    stub.add_response("get_query_execution", execution("SUCCEEDED"), {"QueryExecutionId": QID})
    stub.add_response(
        "get_query_results",
        page([cells("event_type", "n"), cells("view", "1")], "token-1"),
        {"QueryExecutionId": QID, "MaxResults": 1000},
    )
    stub.add_client_error(
        "get_query_results",
        code,
        "Rate exceeded",
        400,
        expected_params={"QueryExecutionId": QID, "MaxResults": 1000, "NextToken": "token-1"},
    )
    # the paginator resumes from the page it had reached, not from the start
    stub.add_response(
        "get_query_results",
        page([cells("click", "2")]),
        {"QueryExecutionId": QID, "MaxResults": 1000, "NextToken": "token-1"},
    )
    result = make_client(boto_client, fake_time).execute(sql)
    assert result.rows() == [("view", 1), ("click", 2)]
    assert fake_time.sleeps == [0.5, 1.0, 0.5, 0.5]


def test_throttling_gives_up_after_the_attempts(
    stub: Stubber, boto_client: Any, fake_time: FakeTime
) -> None:
    client = make_client(boto_client, fake_time)
    client.throttle = Backoff(initial=0.5, maximum=20.0, multiplier=2.0, attempts=3)
    for _ in range(3):
        stub.add_client_error("start_query_execution", "ThrottlingException", "Rate exceeded", 400)
    with pytest.raises(AthenaThrottledError, match="3 times in a row") as info:
        client.execute("SELECT 1")
    assert info.value.retryable is True
    assert fake_time.sleeps == [0.5, 1.0]


def test_failed_query_raises_with_athena_reason(
    stub: Stubber, boto_client: Any, fake_time: FakeTime
) -> None:
    reason = "COLUMN_NOT_FOUND: line 1:8: Column 'nope' cannot be resolved"
    stub.add_response(
        "start_query_execution", {"QueryExecutionId": QID}, start_request("SELECT nope FROM events")
    )
    stub.add_response("get_query_execution", execution("RUNNING"), {"QueryExecutionId": QID})
    stub.add_response(
        "get_query_execution",
        execution(
            "FAILED",
            StateChangeReason=reason,
            AthenaError={
                "ErrorCategory": 2,
                "ErrorType": 1006,
                "Retryable": False,
                "ErrorMessage": reason,
            },
        ),
        {"QueryExecutionId": QID},
    )
    with pytest.raises(AthenaQueryFailedError) as info:
        make_client(boto_client, fake_time).execute("SELECT nope FROM events")
    err = info.value
    assert str(err) == f"Athena query {QID} ended FAILED: {reason}"
    assert (err.state, err.reason, err.error_category, err.error_type) == (
        "FAILED",
        reason,
        2,
        1006,
    )
    assert err.query_id == QID and err.retryable is False


def test_cancelled_query_raises_with_reason(
    stub: Stubber, boto_client: Any, fake_time: FakeTime
) -> None:
    reason = "Query cancelled: workgroup data usage limit exceeded"
    stub.add_response("start_query_execution", {"QueryExecutionId": QID}, start_request("SELECT 1"))
    stub.add_response(
        "get_query_execution",
        execution("CANCELLED", StateChangeReason=reason),
        {"QueryExecutionId": QID},
    )
    with pytest.raises(
        AthenaQueryCancelledError, match="was cancelled: Query cancelled: workgroup"
    ) as info:
        make_client(boto_client, fake_time).execute("SELECT 1")
    assert info.value.state == "CANCELLED" and info.value.reason == reason


def test_timeout_stops_the_query(stub: Stubber, boto_client: Any, fake_time: FakeTime) -> None:
    client = make_client(boto_client, fake_time, timeout=timedelta(seconds=1))
    stub.add_response("start_query_execution", {"QueryExecutionId": QID}, start_request("SELECT 1"))
    for _ in range(5):  # 0.2 + 0.3 + 0.45 + 0.05 (the rest of the second)
        stub.add_response("get_query_execution", execution("RUNNING"), {"QueryExecutionId": QID})
    stub.add_response("stop_query_execution", {}, {"QueryExecutionId": QID})
    with pytest.raises(AthenaTimeoutError, match="still RUNNING") as info:
        client.execute("SELECT 1")
    assert info.value.last_state == "RUNNING"
    assert sum(fake_time.sleeps) == pytest.approx(1.0)


def test_an_interrupt_while_waiting_stops_the_query(
    stub: Stubber, boto_client: Any, fake_time: FakeTime
) -> None:
    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    client = make_client(boto_client, fake_time)
    client._sleep = interrupted
    stub.add_response("start_query_execution", {"QueryExecutionId": QID}, start_request("SELECT 1"))
    stub.add_response("get_query_execution", execution("QUEUED"), {"QueryExecutionId": QID})
    stub.add_response("stop_query_execution", {}, {"QueryExecutionId": QID})
    with pytest.raises(KeyboardInterrupt):
        client.execute("SELECT 1")


def test_other_client_errors_are_terminal(
    stub: Stubber, boto_client: Any, fake_time: FakeTime
) -> None:
    stub.add_client_error(
        "start_query_execution", "InvalidRequestException", "WorkGroup analysts is not found", 400
    )
    with pytest.raises(
        AthenaError, match="InvalidRequestException: WorkGroup analysts is not found"
    ):
        make_client(boto_client, fake_time).execute("SELECT 1")
    assert fake_time.sleeps == []


# -- typed values --------------------------------------------------------------------------

TYPED_COLUMNS = [
    {"Name": "s", "Type": "varchar"},
    {"Name": "i", "Type": "integer"},
    {"Name": "b", "Type": "bigint"},
    {"Name": "d", "Type": "double"},
    {"Name": "ok", "Type": "boolean"},
    {"Name": "ts", "Type": "timestamp"},
    {"Name": "tstz", "Type": "timestamp with time zone", "Precision": 6},
    {"Name": "day", "Type": "date"},
    {"Name": "amount", "Type": "decimal", "Precision": 10, "Scale": 2},
    {"Name": "t", "Type": "time"},
    {"Name": "raw", "Type": "varbinary"},
    {"Name": "tags", "Type": "array"},
]


def test_values_are_typed_from_the_result_metadata(
    stub: Stubber, boto_client: Any, fake_time: FakeTime
) -> None:
    rows = [
        cells(*(c["Name"] for c in TYPED_COLUMNS)),
        cells(
            "vé",
            "-7",
            "9007199254740993",
            "1.5",
            "true",
            "2024-05-01 10:00:00.123",
            "2024-05-01 10:00:00.123456 UTC",
            "2024-05-01",
            "12.34",
            "10:00:00.5",
            "68 69",
            "[a, b]",
        ),
        cells(
            "x",
            "0",
            "0",
            "NaN",
            "false",
            "2024-05-01 10:00:00.123456789",
            "2024-05-01 12:00:00.000 Europe/Paris",
            "1999-12-31",
            "-0.50",
            "23:59:59",
            "",
            "[]",
        ),
        cells(
            None,
            None,
            None,
            "-Infinity",
            None,
            None,
            "2024-05-01 10:00:00 -05:00",
            None,
            None,
            None,
            None,
            None,
        ),
    ]
    stub.add_response(
        "start_query_execution", {"QueryExecutionId": QID}, start_request("SELECT typed")
    )
    stub.add_response("get_query_execution", execution("SUCCEEDED"), {"QueryExecutionId": QID})
    stub.add_response(
        "get_query_results",
        {"ResultSet": {"Rows": rows, "ResultSetMetadata": {"ColumnInfo": TYPED_COLUMNS}}},
        {"QueryExecutionId": QID, "MaxResults": 1000},
    )
    result = make_client(boto_client, fake_time).execute("SELECT typed")
    table = result.to_arrow()
    assert [str(f.type) for f in table.schema] == [
        "string",
        "int32",
        "int64",
        "double",
        "bool",
        "timestamp[us]",
        "timestamp[us, tz=UTC]",
        "date32[day]",
        "decimal128(10, 2)",
        "time64[us]",
        "binary",
        "string",
    ]
    first, second, third = result.dicts()
    assert first == {
        "s": "vé",
        "i": -7,
        "b": 9007199254740993,
        "d": 1.5,
        "ok": True,
        "ts": datetime(2024, 5, 1, 10, 0, 0, 123000),
        "tstz": datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=UTC),
        "day": date(2024, 5, 1),
        "amount": Decimal("12.34"),
        "t": time(10, 0, 0, 500000),
        "raw": b"hi",
        "tags": "[a, b]",
    }
    assert second["d"] != second["d"]  # NaN
    assert second["ts"] == datetime(2024, 5, 1, 10, 0, 0, 123456)  # nanoseconds truncated
    assert second["tstz"] == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)  # Paris is UTC+2 in May
    assert (second["amount"], second["raw"], second["ok"]) == (Decimal("-0.50"), b"", False)
    assert third["d"] == float("-inf")
    assert third["tstz"] == datetime(2024, 5, 1, 15, 0, tzinfo=UTC)
    assert all(
        third[k] is None for k in ("s", "i", "b", "ok", "ts", "day", "amount", "t", "raw", "tags")
    )
    frame = result.to_polars()
    assert frame.schema["tstz"].time_zone == "UTC"  # type: ignore[attr-defined]
    assert frame["b"].to_list() == [9007199254740993, 0, None]
    doc = result.to_dict()["rows"][0]
    assert (doc["amount"], doc["tstz"], doc["raw"]) == (
        "12.34",
        "2024-05-01T10:00:00.123456+00:00",
        "aGk=",
    )


def test_an_unreadable_value_names_its_column(
    stub: Stubber, boto_client: Any, fake_time: FakeTime
) -> None:
    stub.add_response("start_query_execution", {"QueryExecutionId": QID}, start_request("SELECT n"))
    stub.add_response("get_query_execution", execution("SUCCEEDED"), {"QueryExecutionId": QID})
    info = [{"Name": "n", "Type": "bigint"}]
    stub.add_response(
        "get_query_results",
        {
            "ResultSet": {
                "Rows": [cells("n"), cells("twelve")],
                "ResultSetMetadata": {"ColumnInfo": info},
            }
        },
        {"QueryExecutionId": QID, "MaxResults": 1000},
    )
    with pytest.raises(AthenaError, match="cannot read column 'n' of type 'bigint'"):
        make_client(boto_client, fake_time).execute("SELECT n")


# -- configuration -------------------------------------------------------------------------


def test_config_from_env_defaults_and_overrides() -> None:
    settings = Settings(table=TableName("shop", "events"))
    config = AthenaConfig.from_env(settings, {"LAKEHOUSE_ATHENA_OUTPUT": "s3://bkt/r/"})
    assert (config.output_location, config.workgroup, config.database, config.catalog) == (
        "s3://bkt/r/",
        "primary",
        "shop",
        "AwsDataCatalog",
    )
    env = {
        "LAKEHOUSE_ATHENA_OUTPUT": "s3://bkt/r/",
        "LAKEHOUSE_ATHENA_WORKGROUP": "etl",
        "LAKEHOUSE_ATHENA_DATABASE": "other",
        "LAKEHOUSE_ATHENA_TIMEOUT": "90s",
    }
    config = AthenaConfig.from_env(settings, env, workgroup="adhoc")
    assert (config.workgroup, config.database, config.timeout) == (
        "adhoc",
        "other",
        timedelta(seconds=90),
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "LAKEHOUSE_ATHENA_OUTPUT is not set"),
        (
            {"LAKEHOUSE_ATHENA_OUTPUT": "/tmp/results"},
            "LAKEHOUSE_ATHENA_OUTPUT='/tmp/results' is not an s3://bucket/prefix/ location",
        ),
        (
            {"LAKEHOUSE_ATHENA_OUTPUT": "s3://bkt/r/", "LAKEHOUSE_ATHENA_TIMEOUT": "soon"},
            "LAKEHOUSE_ATHENA_TIMEOUT",
        ),
        (
            {"LAKEHOUSE_ATHENA_OUTPUT": "s3://bkt/r/", "LAKEHOUSE_ATHENA_DATABASE": "a-b"},
            "LAKEHOUSE_ATHENA_DATABASE='a-b'",
        ),
    ],
)
def test_config_errors_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(AthenaConfigError, match=message.replace("(", r"\(")) as info:
        AthenaConfig.from_env(Settings(), env)
    assert info.value.retryable is False
