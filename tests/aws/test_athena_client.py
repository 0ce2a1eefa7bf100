"""The Athena client against botocore's Stubber: exact requests, polling and backoff,
throttling, FAILED/CANCELLED reasons, timeouts and interrupts, multi-page results."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pyarrow as pa
import pytest
from botocore.stub import Stubber

from lakehouse.engines.athena import (
    AthenaError,
    AthenaQueryCancelledError,
    AthenaQueryFailedError,
    AthenaThrottledError,
    AthenaTimeoutError,
    Backoff,
)
from tests.aws.test_athena_helpers import (
    QID,
    FakeTime,
    cells,
    execution,
    make_client,
    page,
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
