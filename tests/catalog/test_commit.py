"""The one commit path: typed conflict classification and the retry policy (attempts,
jittered exponential back-off, a clear error when the attempts run out)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from pyiceberg.exceptions import CommitFailedException, ValidationException
from pyiceberg.table import Table
from tenacity import RetryCallState, Retrying

from catalog.commit import (
    ATTEMPTS_PROPERTY,
    ATTEMPTS_VARIABLE,
    MIN_WAIT_PROPERTY,
    CommitConflictError,
    Conflict,
    RetryPolicy,
    classify,
    commit_with_retries,
)
from lakehouse.errors import CommitError, ConfigError
from tests.maintenance.builders import append, make_rows, sort_rows

HOUR = datetime(2024, 5, 1, 3, tzinfo=UTC)
FAST = RetryPolicy(attempts=5, min_wait=timedelta(milliseconds=10), max_wait=timedelta(seconds=1))


def _event_ids(table: Table) -> list[str]:
    return sorted(table.refresh().scan().to_arrow().column("event_id").to_pylist())


def test_a_lost_race_is_retried_on_the_new_head_with_growing_jittered_pauses(
    sqlite_events: Table,
) -> None:
    table = sqlite_events
    other = table.catalog.load_table(table.name())
    # no retries inside pyiceberg: every lost race reaches the commit function
    other.transaction().set_properties({"commit.retry.num-retries": "0"}).commit_transaction()
    table.refresh()
    rng = random.Random(7)
    ours = sort_rows(make_rows(rng, 6, HOUR, "ours"))
    theirs = [sort_rows(make_rows(rng, 4, HOUR, f"theirs{i}")) for i in range(2)]
    heads: list[int | None] = []
    sleeps: list[float] = []

    def attempt(number: int) -> int:
        heads.append(table.metadata.current_snapshot_id)
        if number <= 2:  # a writer lands between our read of the head and our commit
            append(other, theirs[number - 1])
        append(table, ours)
        return number

    assert commit_with_retries(table, attempt, what="a test", policy=FAST, sleep=sleeps.append) == 3
    assert len(heads) == 3 and len(set(heads)) == 3, "each retry starts from the new head"
    assert len(sleeps) == 2
    for retry, pause in enumerate(sleeps, start=1):
        assert 0.010 <= pause <= 0.010 * 2 ** (retry - 1) + 1e-9
    expected = sorted(str(r["event_id"]) for r in [*ours, *theirs[0], *theirs[1]])
    assert _event_ids(table) == expected  # our rows once, theirs kept


def test_an_error_that_is_not_a_conflict_is_raised_at_once(sqlite_events: Table) -> None:
    calls: list[int] = []
    sleeps: list[float] = []

    def broken(number: int) -> None:
        calls.append(number)
        raise ValueError("bad input")

    with pytest.raises(ValueError, match="bad input"):
        commit_with_retries(sqlite_events, broken, what="x", policy=FAST, sleep=sleeps.append)
    assert calls == [1] and sleeps == []

    def conflicting(number: int) -> None:
        calls.append(number)
        raise ValidationException("a concurrent delete touched our files")

    # a real validation conflict (the base is still there) is not retried by default
    with pytest.raises(ValidationException):
        commit_with_retries(sqlite_events, conflicting, what="x", policy=FAST, sleep=sleeps.append)
    assert calls == [1, 1] and sleeps == []


def test_exhausted_attempts_raise_a_clear_project_error(sqlite_events: Table) -> None:
    calls: list[int] = []
    sleeps: list[float] = []

    def always_loses(number: int) -> None:
        calls.append(number)
        raise CommitFailedException("Requirement failed: branch main has changed")

    policy = RetryPolicy(attempts=3, min_wait=timedelta(milliseconds=1))
    with pytest.raises(CommitConflictError) as caught:
        commit_with_retries(
            sqlite_events, always_loses, what="batch k1", policy=policy, sleep=sleeps.append
        )
    error = caught.value
    assert calls == [1, 2, 3] and len(sleeps) == 2
    assert isinstance(error, CommitError) and error.retryable
    assert error.attempts == 3 and error.conflict is Conflict.LOST_RACE
    assert isinstance(error.__cause__, CommitFailedException)
    message = str(error)
    assert "batch k1" in message and "analytics.events" in message and "3 attempts" in message


def test_a_commit_whose_base_was_expired_is_committed_again(sqlite_events: Table) -> None:
    table = sqlite_events
    rng = random.Random(3)
    for i in range(2):
        append(table, sort_rows(make_rows(rng, 3, HOUR, f"b{i}")))
    first = table.metadata.snapshots[0].snapshot_id
    other = table.catalog.load_table(table.name())
    stale = table.catalog.load_table(table.name())
    assert classify(CommitFailedException("x"), stale, first) is Conflict.LOST_RACE
    assert classify(ValidationException("x"), stale, first) is Conflict.VALIDATION
    assert classify(ValueError("x"), stale, first) is None
    stale.metadata = stale.metadata.model_copy(update={"current_snapshot_id": first})
    other.maintenance.expire_snapshots().by_ids([first]).commit()
    assert classify(ValidationException("x"), stale, first) is Conflict.BASE_EXPIRED
    assert classify(ValidationException("x"), stale, None) is Conflict.VALIDATION

    seen: list[int] = []

    def attempt(number: int) -> int:
        seen.append(number)
        if number == 1:  # as pyiceberg reports a rebuild whose starting snapshot is gone
            raise ValidationException(f"Cannot find starting snapshot {first}")
        return number

    expiring = table.catalog.load_table(table.name())
    expiring.metadata = stale.metadata.model_copy(update={"current_snapshot_id": first})
    # the attempt starts at `first` (gone from the catalog): retried, not raised
    assert commit_with_retries(expiring, attempt, what="x", policy=FAST, sleep=lambda _: None) == 2
    assert seen == [1, 2]


def test_policy_from_table_properties_and_the_environment(sqlite_events: Table) -> None:
    assert RetryPolicy.for_table(sqlite_events, env={}) == RetryPolicy()
    props = {ATTEMPTS_PROPERTY: "9", MIN_WAIT_PROPERTY: "20"}
    policy = RetryPolicy.from_properties(props, env={})
    assert policy.attempts == 9 and policy.min_wait == timedelta(milliseconds=20)
    assert RetryPolicy.from_properties(props, env={ATTEMPTS_VARIABLE: "2"}).attempts == 2
    with pytest.raises(ConfigError, match=ATTEMPTS_VARIABLE):
        RetryPolicy.from_properties({}, env={ATTEMPTS_VARIABLE: "many"})
    with pytest.raises(ConfigError, match=ATTEMPTS_PROPERTY):
        RetryPolicy.from_properties({ATTEMPTS_PROPERTY: "0"}, env={})
    sqlite_events.transaction().set_properties({ATTEMPTS_PROPERTY: "4"}).commit_transaction()
    assert RetryPolicy.for_table(sqlite_events, env={}).attempts == 4


def test_pauses_grow_exponentially_with_jitter_and_a_cap() -> None:
    policy = RetryPolicy(min_wait=timedelta(milliseconds=50), max_wait=timedelta(seconds=1))
    wait = policy.waits()
    state = RetryCallState(Retrying(), None, (), {})
    for retry, ceiling in ((1, 0.05), (3, 0.2), (5, 0.8), (9, 1.0)):
        state.attempt_number = retry
        draws = [wait(state) for _ in range(200)]
        assert all(0.05 <= d <= ceiling + 1e-9 for d in draws)
        if retry > 1:
            assert len(set(draws)) > 100, "jittered"
            assert max(draws) > 0.05 + 0.8 * (ceiling - 0.05)
