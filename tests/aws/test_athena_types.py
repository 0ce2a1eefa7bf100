"""Athena results typed from the result metadata (checked by value through the client),
and the Athena settings."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pytest
from botocore.stub import Stubber

from lakehouse.engines.athena import AthenaConfig, AthenaConfigError, AthenaError
from lakehouse.settings import Settings, TableName
from tests.aws.test_athena_helpers import (
    QID,
    FakeTime,
    cells,
    execution,
    make_client,
    start_request,
    stub_client,
)


@pytest.fixture
def boto_client() -> Any:
    return stub_client()


@pytest.fixture
def stub(boto_client: Any) -> Iterator[Stubber]:
    with Stubber(boto_client) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


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
