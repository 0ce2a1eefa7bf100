"""Kinesis Data Streams calls for the stream source: a boto3 client configured from the
catalog's or the environment's AWS settings, the shard listing (paginated), shard
iterators and record reads, retried with back-off on throttling and transient failures.

Settings, first found wins: catalog properties ``kinesis.endpoint``, ``kinesis.region``,
``kinesis.access-key-id``, ``kinesis.secret-access-key``, ``kinesis.session-token``; then
``client.region`` / ``client.access-key-id`` / ``client.secret-access-key`` /
``client.session-token`` (pyiceberg's shared AWS keys); then the standard AWS chain of
the environment (``AWS_ENDPOINT_URL_KINESIS`` or ``AWS_ENDPOINT_URL``, ``AWS_REGION``,
``AWS_ACCESS_KEY_ID``..., profiles, instance roles); the region last falls back to the
catalog's ``glue.region`` or ``s3.region``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from lakehouse.errors import ConfigError, RetryableError

log = logging.getLogger(__name__)
T = TypeVar("T")

THROTTLED = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "LimitExceededException",
        "ThrottlingException",
        "KMSThrottlingException",
        "InternalFailure",
        "InternalFailureException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
    }
)
"""Error codes that mean "later": retried with back-off, the read is not lost."""

TERMINAL = frozenset(
    {"ResourceNotFoundException", "AccessDeniedException", "UnrecognizedClientException"}
)


class StreamUnavailable(RetryableError):
    """Kinesis could not be reached or kept throttling after the retries: run again."""


class IteratorExpired(Exception):
    """A shard iterator is older than five minutes: get a new one at the same place."""


@dataclass(frozen=True)
class StreamSettings:
    endpoint: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None


def stream_settings(properties: Mapping[str, Any]) -> StreamSettings:
    """The Kinesis settings from catalog properties (unset ones are left to boto3)."""

    def first(*keys: str) -> str | None:
        for key in keys:
            value = properties.get(key)
            if value:
                return str(value)
        return None

    return StreamSettings(
        endpoint=first("kinesis.endpoint"),
        region=first("kinesis.region", "client.region"),
        access_key_id=first("kinesis.access-key-id", "client.access-key-id"),
        secret_access_key=first("kinesis.secret-access-key", "client.secret-access-key"),
        session_token=first("kinesis.session-token", "client.session-token"),
    )


def kinesis_client(settings: StreamSettings, fallback_region: str | None = None) -> Any:
    """A boto3 Kinesis client. Its own retries are few: ours (:class:`StreamClient`) wait
    longer and know which errors are worth waiting for."""
    import boto3
    from botocore.config import Config

    session = boto3.session.Session()
    region = (
        settings.region
        or session.region_name  # AWS_DEFAULT_REGION, the profile's region
        or os.environ.get("AWS_REGION")
        or fallback_region
    )
    if not region:
        raise ConfigError(
            "no AWS region for Kinesis: set AWS_REGION (or AWS_DEFAULT_REGION), or the "
            "catalog property kinesis.region (or client.region)"
        )
    return session.client(
        "kinesis",
        endpoint_url=settings.endpoint,
        region_name=region,
        aws_access_key_id=settings.access_key_id,
        aws_secret_access_key=settings.secret_access_key,
        aws_session_token=settings.session_token,
        config=Config(
            retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=5, read_timeout=30
        ),
    )


@dataclass(frozen=True)
class Shard:
    """A shard as listed: its parents (after a split or merge) and, once closed, its
    ending sequence number."""

    id: str
    parents: tuple[str, ...]
    starting_sequence: int
    ending_sequence: int | None

    @property
    def closed(self) -> bool:
        return self.ending_sequence is not None


@dataclass(frozen=True)
class Read:
    """One GetRecords answer."""

    records: list[dict[str, Any]]
    next_iterator: str | None
    millis_behind: int | None


class _Transient(Exception):
    pass


class StreamClient:
    """The calls the source makes on one stream, with back-off: ``attempts`` tries per
    call, waits doubling from ``initial_wait`` up to ``max_wait`` seconds (jittered)."""

    def __init__(
        self,
        client: Any,
        stream: str,
        *,
        attempts: int = 10,
        initial_wait: float = 0.2,
        max_wait: float = 10.0,
    ) -> None:
        self.client = client
        self.stream = stream
        self.attempts = attempts
        self.initial_wait = initial_wait
        self.max_wait = max_wait
        self.throttled = 0  # calls that had to wait, for the reports

    def shards(self) -> list[Shard]:
        """Every shard of the stream, open and closed (ListShards, all pages)."""
        out: list[Shard] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"NextToken": token} if token else {"StreamName": self.stream}
            page = self._call(self.client.list_shards, **kwargs)
            for item in page.get("Shards", []):
                span = item.get("SequenceNumberRange", {})
                ending = span.get("EndingSequenceNumber")
                out.append(
                    Shard(
                        id=item["ShardId"],
                        parents=tuple(
                            p
                            for p in (item.get("ParentShardId"), item.get("AdjacentParentShardId"))
                            if p
                        ),
                        starting_sequence=int(span.get("StartingSequenceNumber", "0") or 0),
                        ending_sequence=int(ending) if ending is not None else None,
                    )
                )
            token = page.get("NextToken")
            if not token:
                return out

    def iterator(self, shard: str, *, after: int | None = None, at: datetime | None = None) -> str:
        """An iterator after sequence ``after``, else at time ``at``, else at the start."""
        kwargs: dict[str, Any] = {"StreamName": self.stream, "ShardId": shard}
        if after is not None:
            kwargs.update(
                ShardIteratorType="AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=str(after)
            )
        elif at is not None:
            kwargs.update(ShardIteratorType="AT_TIMESTAMP", Timestamp=at)
        else:
            kwargs.update(ShardIteratorType="TRIM_HORIZON")
        answer = self._call(self.client.get_shard_iterator, **kwargs)
        return str(answer["ShardIterator"])

    def read(self, iterator: str, limit: int) -> Read:
        """One GetRecords call; :class:`IteratorExpired` when the iterator is too old."""
        answer = self._call(self.client.get_records, ShardIterator=iterator, Limit=limit)
        return Read(
            list(answer.get("Records", [])),
            answer.get("NextShardIterator"),
            answer.get("MillisBehindLatest"),
        )

    def _call(self, fn: Callable[..., T], **kwargs: Any) -> T:
        from botocore.exceptions import BotoCoreError, ClientError

        def once() -> T:
            try:
                return fn(**kwargs)
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                if code == "ExpiredIteratorException":
                    raise IteratorExpired(str(exc)) from exc
                if code in THROTTLED:
                    self.throttled += 1
                    raise _Transient(f"{code}: {exc}") from exc
                if code in TERMINAL:
                    raise ConfigError(f"Kinesis stream {self.stream!r}: {exc}") from exc
                raise
            except BotoCoreError as exc:  # connection refused or reset, timeouts
                raise _Transient(str(exc)) from exc

        retrying = Retrying(
            retry=retry_if_exception_type(_Transient),
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential_jitter(initial=self.initial_wait, max=self.max_wait),
            before_sleep=_log_retry,
            reraise=True,
        )
        try:
            return retrying(once)
        except _Transient as exc:
            raise StreamUnavailable(
                f"Kinesis stream {self.stream!r} unavailable after {self.attempts} attempts: {exc}"
            ) from exc


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    log.info("Kinesis call waiting (attempt %d): %s", state.attempt_number, exc)
