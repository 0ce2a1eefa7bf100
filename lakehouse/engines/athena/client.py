"""Run SQL on Athena with boto3: start, poll with backoff, page through the results.

    result = run_query("SELECT event_type, count(*) AS n FROM events GROUP BY 1")
    result.to_polars()

``?`` placeholders are filled from ``params`` through Athena's ``ExecutionParameters``
(never formatted into the text). Throttling (``TooManyRequestsException``,
``ThrottlingException``) is retried with exponential backoff on every call; a query that
ends ``FAILED`` or ``CANCELLED`` raises :class:`AthenaQueryFailedError` /
:class:`AthenaQueryCancelledError` with Athena's ``StateChangeReason``; a query still
running at the timeout is asked to stop and raises :class:`AthenaTimeoutError`.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from lakehouse.engines.athena.config import AthenaConfig
from lakehouse.engines.athena.errors import (
    AthenaConfigError,
    AthenaError,
    AthenaQueryCancelledError,
    AthenaQueryFailedError,
    AthenaThrottledError,
    AthenaTimeoutError,
)
from lakehouse.engines.athena.results import AthenaResult, QueryExecution, QueryStats
from lakehouse.engines.athena.sql import execution_parameters
from lakehouse.engines.athena.types import to_table
from lakehouse.settings import Settings

log = logging.getLogger(__name__)

THROTTLING_CODES = frozenset(
    {"TooManyRequestsException", "ThrottlingException", "Throttling", "RequestLimitExceeded"}
)
RUNNING_STATES = frozenset({"QUEUED", "RUNNING"})
PAGE_SIZE = 1000  # the most GetQueryResults returns per call


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff: ``initial`` seconds, times ``multiplier``, capped at ``maximum``;
    ``attempts`` bounds the retries of one call (polling is bounded by the timeout)."""

    initial: float = 0.2
    maximum: float = 5.0
    multiplier: float = 2.0
    attempts: int = 8

    def delays(self) -> Any:
        delay = self.initial
        while True:
            yield delay
            delay = min(delay * self.multiplier, self.maximum)


POLL = Backoff(initial=0.2, maximum=5.0, multiplier=1.5)
THROTTLE = Backoff(initial=0.5, maximum=20.0, multiplier=2.0, attempts=8)


def boto3_athena_client() -> Any:
    """An Athena client from boto3's default session (standard credential chain, region,
    ``AWS_ENDPOINT_URL[_ATHENA]``), with botocore's standard retries for transport errors."""
    import boto3
    import botocore.config
    import botocore.exceptions

    session = boto3.session.Session()
    # boto3 reads AWS_DEFAULT_REGION; other AWS SDKs (and pyarrow) read AWS_REGION.
    region = session.region_name or os.environ.get("AWS_REGION") or None
    try:
        return session.client(
            "athena",
            region_name=region,
            config=botocore.config.Config(
                retries={"mode": "standard", "max_attempts": 3}, user_agent_extra="lakehouse"
            ),
        )
    except botocore.exceptions.NoRegionError as exc:
        raise AthenaConfigError(
            "no AWS region is configured: set AWS_DEFAULT_REGION or AWS_REGION (or a profile's region)"
        ) from exc


class AthenaClient:
    """Runs queries in one workgroup with one result location and default database.

    ``client`` is a boto3 Athena client (default: :func:`boto3_athena_client`); ``sleep``
    and ``clock`` can be replaced in tests.
    """

    def __init__(
        self,
        config: AthenaConfig,
        *,
        client: Any | None = None,
        poll: Backoff = POLL,
        throttle: Backoff = THROTTLE,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        page_size: int = PAGE_SIZE,
    ) -> None:
        self.config = config
        self._client = client
        self.poll = poll
        self.throttle = throttle
        self._sleep = sleep
        self._clock = clock
        self.page_size = page_size

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = boto3_athena_client()
        return self._client

    # -- the three steps --------------------------------------------------------------

    def start(self, sql: str, params: Sequence[Any] | None = None) -> str:
        """Start ``sql``; returns the query execution id."""
        request: dict[str, Any] = {
            "QueryString": sql,
            "ClientRequestToken": str(uuid.uuid4()),  # our retries cannot start it twice
            "WorkGroup": self.config.workgroup,
            "QueryExecutionContext": {
                "Database": self.config.database,
                "Catalog": self.config.catalog,
            },
            "ResultConfiguration": {"OutputLocation": self.config.output_location},
        }
        if params:
            request["ExecutionParameters"] = execution_parameters(params)
        response = self._call("start_query_execution", **request)
        query_id = str(response["QueryExecutionId"])
        log.info("athena query %s started in workgroup %s", query_id, self.config.workgroup)
        return query_id

    def wait(self, query_id: str) -> QueryExecution:
        """Poll until the query ends; returns the execution or raises."""
        deadline = self._clock() + self.config.timeout.total_seconds()
        delays = self.poll.delays()
        polls = 0
        try:
            while True:
                execution = self._call("get_query_execution", QueryExecutionId=query_id)[
                    "QueryExecution"
                ]
                polls += 1
                status = execution.get("Status") or {}
                state = str(status.get("State", "UNKNOWN"))
                if state == "SUCCEEDED":
                    log.info("athena query %s succeeded after %s polls", query_id, polls)
                    return QueryExecution(
                        query_id=query_id,
                        state=state,
                        statement_type=execution.get("StatementType"),
                        output_location=(execution.get("ResultConfiguration") or {}).get(
                            "OutputLocation"
                        ),
                        stats=QueryStats.from_execution(execution),
                        polls=polls,
                    )
                if state not in RUNNING_STATES:
                    raise _final_error(query_id, state, status)
                remaining = deadline - self._clock()
                if remaining <= 0:
                    self.stop(query_id)
                    raise AthenaTimeoutError(
                        f"Athena query {query_id} was still {state} after "
                        f"{self.config.timeout}; it was asked to stop "
                        "(raise LAKEHOUSE_ATHENA_TIMEOUT to wait longer)",
                        query_id=query_id,
                        last_state=state,
                    )
                self._sleep(min(next(delays), remaining))
        except KeyboardInterrupt:
            self.stop(query_id)
            raise

    def fetch(self, execution: QueryExecution) -> AthenaResult:
        """Page through ``GetQueryResults`` and type the rows from the result metadata."""
        from botocore.exceptions import ClientError
        from botocore.paginate import TokenEncoder

        paginator = self.client.get_paginator("get_query_results")
        columns: list[dict[str, Any]] | None = None
        rows: list[list[str | None]] = []
        token: str | None = None
        pages = 0
        delays = self.throttle.delays()
        retries = 0
        while True:
            config: dict[str, Any] = {"PageSize": self.page_size}
            if token is not None:
                config["StartingToken"] = TokenEncoder().encode({"NextToken": token})
            try:
                for page in paginator.paginate(
                    QueryExecutionId=execution.query_id, PaginationConfig=config
                ):
                    result_set = page.get("ResultSet") or {}
                    if columns is None:
                        columns = list(
                            (result_set.get("ResultSetMetadata") or {}).get("ColumnInfo") or []
                        )
                    page_rows = [
                        [cell.get("VarCharValue") for cell in row.get("Data") or []]
                        for row in result_set.get("Rows") or []
                    ]
                    if pages == 0 and _is_header(page_rows, columns, execution.statement_type):
                        page_rows = page_rows[1:]
                    rows.extend(page_rows)
                    pages += 1
                    token = page.get("NextToken")
                break
            except ClientError as exc:
                if _code(exc) not in THROTTLING_CODES or retries + 1 >= self.throttle.attempts:
                    raise _client_error("get_query_results", exc) from exc
                retries += 1
                log.info("get_query_results throttled; retry %s", retries)
                self._sleep(next(delays))
        columns = columns or []
        width = len(columns)
        for row in rows:
            if len(row) != width:
                raise AthenaError(
                    f"Athena query {execution.query_id}: a row has {len(row)} values "
                    f"for {width} columns"
                )
        return AthenaResult(
            query_id=execution.query_id,
            columns=tuple(str(c.get("Name", "")) for c in columns),
            types=tuple(_type_label(c) for c in columns),
            table=to_table(columns, rows),
            statement_type=execution.statement_type,
            output_location=execution.output_location,
            stats=execution.stats,
            polls=execution.polls,
            pages=pages,
        )

    def stop(self, query_id: str) -> None:
        """Ask Athena to stop a query (best effort: failures are logged)."""
        try:
            self._call("stop_query_execution", QueryExecutionId=query_id)
            log.info("athena query %s: stop requested", query_id)
        except AthenaError as exc:
            log.warning("could not stop athena query %s: %s", query_id, exc)

    # -- combined ---------------------------------------------------------------------

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> AthenaResult:
        """Start, wait and fetch: the query's rows."""
        return self.fetch(self.wait(self.start(sql, params)))

    def run(self, sql: str, params: Sequence[Any] | None = None) -> QueryExecution:
        """Start and wait, without reading rows (DDL, maintenance statements)."""
        return self.wait(self.start(sql, params))

    # -- one API call, throttling retried ---------------------------------------------

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        import botocore.exceptions

        method = getattr(self.client, operation)
        delays = self.throttle.delays()
        for attempt in range(1, self.throttle.attempts + 1):
            try:
                response: dict[str, Any] = method(**kwargs)
                return response
            except botocore.exceptions.ClientError as exc:
                if _code(exc) not in THROTTLING_CODES:
                    raise _client_error(operation, exc) from exc
                if attempt == self.throttle.attempts:
                    raise AthenaThrottledError(
                        f"Athena throttled {operation} {attempt} times in a row "
                        f"({_code(exc)}); try again later"
                    ) from exc
                delay = next(delays)
                log.info(
                    "athena %s throttled (%s); retrying in %.1fs", operation, _code(exc), delay
                )
                self._sleep(delay)
            except botocore.exceptions.NoCredentialsError as exc:
                raise AthenaConfigError(
                    "no AWS credentials found by the standard chain (environment, profile, "
                    "instance role)"
                ) from exc
            except botocore.exceptions.BotoCoreError as exc:
                raise AthenaError(f"cannot reach Athena ({operation}): {exc}") from exc
        raise AssertionError("unreachable")  # pragma: no cover


def _code(exc: Any) -> str:
    return str((exc.response.get("Error") or {}).get("Code", ""))


def _client_error(operation: str, exc: Any) -> AthenaError:
    error = exc.response.get("Error") or {}
    return AthenaError(
        f"Athena refused {operation}: {error.get('Code', 'error')}: {error.get('Message', exc)}"
    )


def _final_error(query_id: str, state: str, status: dict[str, Any]) -> AthenaError:
    reason = status.get("StateChangeReason")
    details = status.get("AthenaError") or {}
    kind = AthenaQueryCancelledError if state == "CANCELLED" else AthenaQueryFailedError
    verb = "was cancelled" if state == "CANCELLED" else f"ended {state}"
    return kind(
        f"Athena query {query_id} {verb}: {reason or 'no reason given'}",
        query_id=query_id,
        state=state,
        reason=reason,
        error_type=details.get("ErrorType"),
        error_category=details.get("ErrorCategory"),
        athena_retryable=bool(details.get("Retryable", False)),
    )


def _is_header(
    rows: list[list[str | None]], columns: list[dict[str, Any]] | None, statement_type: str | None
) -> bool:
    """A SELECT's first row repeats the column names (DDL and utility results do not)."""
    if not rows or not columns or statement_type != "DML":
        return False
    return rows[0] == [c.get("Name") for c in columns]


def _type_label(info: dict[str, Any]) -> str:
    name = str(info.get("Type", "varchar"))
    if name.lower() == "decimal" and info.get("Precision"):
        return f"decimal({info['Precision']},{info.get('Scale') or 0})"
    return name


def run_query(
    sql: str,
    params: Sequence[Any] | None = None,
    *,
    settings: Settings | None = None,
    config: AthenaConfig | None = None,
    client: AthenaClient | None = None,
) -> AthenaResult:
    """Run one statement on Athena and return its typed rows. The configuration is read
    from the environment now (:meth:`AthenaConfig.from_env`) unless given."""
    athena = client or AthenaClient(config or AthenaConfig.from_env(settings))
    return athena.execute(sql, params)
