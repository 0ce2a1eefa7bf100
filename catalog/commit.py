"""One commit path: every commit of the project, with one retry policy.

pyiceberg retries a conflicting snapshot commit by itself, rebuilding it on the new head
(``commit.retry.*`` table properties). What it cannot do is re-plan: a compaction or
manifest rewrite that kept losing to writers, a schema change, an expiry computed from an
old head, a lease compare-and-set, or a commit whose starting snapshot was expired
meanwhile (pyiceberg's rebuild then fails validation). :func:`commit_with_retries` runs
a caller's attempt — "read the head, plan, commit" — and, when the attempt loses to a
concurrent commit, refreshes the table, waits a jittered, growing pause and runs it
again on the new head, up to :class:`RetryPolicy` ``attempts``.

Conflicts are recognised by type, in one place (:func:`classify`): the catalog refusing
the swap (``CommitFailedException``), or a validation failure
(``ValidationException``) whose attempt started from a snapshot that is gone now.
Anything else is not a conflict and is raised at once.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import timedelta
from enum import Enum
from typing import TypeVar

from pyiceberg.exceptions import CommitFailedException, ValidationException
from pyiceberg.table import Table
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from catalog.batch_key import BatchKeyLanded
from lakehouse.errors import CommitError, ConfigError, UsageError

log = logging.getLogger(__name__)
T = TypeVar("T")

ATTEMPTS_PROPERTY = "lakehouse.commit.attempts"
MIN_WAIT_PROPERTY = "lakehouse.commit.min-wait-ms"
MAX_WAIT_PROPERTY = "lakehouse.commit.max-wait-ms"
ATTEMPTS_VARIABLE = "LAKEHOUSE_COMMIT_RETRIES"


class Conflict(Enum):
    """Why an attempt did not land, when it lost to a concurrent commit."""

    LOST_RACE = "a concurrent commit won the catalog swap"
    BASE_EXPIRED = "the snapshot it started from was expired meanwhile"
    VALIDATION = "a concurrent change conflicts with it"


def classify(exc: BaseException, table: Table, base_snapshot_id: int | None) -> Conflict | None:
    """The conflict ``exc`` reports for an attempt that started at ``base_snapshot_id``,
    or None when it is not a commit conflict. Both exception types guarantee that
    nothing of the attempt was committed."""
    if isinstance(exc, (CommitFailedException, BatchKeyLanded)):
        return Conflict.LOST_RACE  # a retry looks the key up again and finds it
    if isinstance(exc, ValidationException):
        if base_snapshot_id is not None:
            table.refresh()
            if table.metadata.snapshot_by_id(base_snapshot_id) is None:
                return Conflict.BASE_EXPIRED
        return Conflict.VALIDATION
    return None


@dataclass(frozen=True)
class RetryPolicy:
    """How often a commit is attempted and how long to pause between attempts.

    The pause before retry ``n`` (1-based) is drawn uniformly between ``min_wait`` and
    ``min_wait * 2 ** (n - 1)``, capped at ``max_wait`` ("full jitter": contenders that
    collided once spread out instead of colliding again).
    """

    attempts: int = 6
    min_wait: timedelta = timedelta(milliseconds=50)
    max_wait: timedelta = timedelta(seconds=5)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise UsageError("a commit needs at least 1 attempt")
        if self.min_wait < timedelta(0) or self.max_wait < self.min_wait:
            raise UsageError("commit waits need 0 <= min_wait <= max_wait")

    @classmethod
    def for_table(cls, table: Table, env: Mapping[str, str] | None = None) -> RetryPolicy:
        """The defaults, overridden by the table properties ``lakehouse.commit.attempts``,
        ``lakehouse.commit.min-wait-ms`` and ``lakehouse.commit.max-wait-ms``, then by
        the ``LAKEHOUSE_COMMIT_RETRIES`` variable (attempts)."""
        return cls.from_properties(table.properties, env)

    @classmethod
    def from_properties(
        cls, properties: Mapping[str, str], env: Mapping[str, str] | None = None
    ) -> RetryPolicy:
        env = os.environ if env is None else env
        default = cls()
        attempts = _integer(properties.get(ATTEMPTS_PROPERTY), ATTEMPTS_PROPERTY, default.attempts)
        attempts = _integer(env.get(ATTEMPTS_VARIABLE), ATTEMPTS_VARIABLE, attempts)
        low = _integer(properties.get(MIN_WAIT_PROPERTY), MIN_WAIT_PROPERTY, _ms(default.min_wait))
        high = _integer(properties.get(MAX_WAIT_PROPERTY), MAX_WAIT_PROPERTY, _ms(default.max_wait))
        try:
            return cls(attempts, timedelta(milliseconds=low), timedelta(milliseconds=high))
        except UsageError as exc:
            raise ConfigError(
                f"invalid commit retry settings ({ATTEMPTS_PROPERTY}={attempts}, "
                f"{MIN_WAIT_PROPERTY}={low}, {MAX_WAIT_PROPERTY}={high}): {exc}"
            ) from exc

    def with_attempts(self, attempts: int) -> RetryPolicy:
        return RetryPolicy(attempts, self.min_wait, self.max_wait)

    def waits(self) -> wait_random_exponential:
        return wait_random_exponential(
            multiplier=self.min_wait.total_seconds(),
            min=self.min_wait.total_seconds(),
            max=self.max_wait.total_seconds(),
        )


def _ms(value: timedelta) -> int:
    return int(value.total_seconds() * 1000)


def _integer(raw: str | None, source: str, default: int) -> int:
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{source} must be a whole number, not {raw!r}") from None


class CommitConflictError(CommitError):
    """A commit kept losing to concurrent commits until its attempts ran out; nothing of
    it was committed. Retryable: running the operation again later starts afresh."""

    def __init__(self, message: str, *, attempts: int, conflict: Conflict) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.conflict = conflict


class _Lost(Exception):
    def __init__(self, conflict: Conflict, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.conflict = conflict
        self.cause = cause


RETRIED = frozenset({Conflict.LOST_RACE, Conflict.BASE_EXPIRED})


def commit_with_retries(
    table: Table,
    attempt: Callable[[int], T],
    *,
    what: str,
    policy: RetryPolicy | None = None,
    retry_on: Collection[Conflict] = RETRIED,
    refresh_first: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``attempt(n)`` (n = 1, 2, ...) until it returns, retrying commit conflicts.

    Before every retry (and before the first with ``refresh_first``) the table is
    refreshed: the attempt reads the new head and plans again on it. A conflict not in
    ``retry_on``, and any error that is not a conflict, is raised as it is. When the
    policy's attempts run out, :class:`CommitConflictError` names ``what``, the table,
    the attempts and the last conflict.
    """
    policy = policy or RetryPolicy.for_table(table)
    number = 0

    def once() -> T:
        nonlocal number
        number += 1
        if number > 1 or refresh_first:
            table.refresh()
        base = table.metadata.current_snapshot_id
        try:
            return attempt(number)
        except (CommitFailedException, ValidationException) as exc:
            conflict = classify(exc, table, base)
            if conflict is not None and conflict in retry_on:
                raise _Lost(conflict, exc) from exc
            raise

    def before_sleep(state: RetryCallState) -> None:
        lost = state.outcome.exception() if state.outcome else None
        log.info(
            "commit of %s lost (attempt %d of %d: %s); trying again on the new head",
            what,
            state.attempt_number,
            policy.attempts,
            lost.conflict.value if isinstance(lost, _Lost) else lost,
        )

    retrying = Retrying(
        retry=retry_if_exception_type(_Lost),
        stop=stop_after_attempt(policy.attempts),
        wait=policy.waits(),
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
    try:
        return retrying(once)
    except _Lost as lost:
        raise CommitConflictError(
            f"commit of {what} to {'.'.join(table.name())} gave up after {number} "
            f"attempt{'s' if number != 1 else ''}: {lost.conflict.value} ({lost.cause})",
            attempts=number,
            conflict=lost.conflict,
        ) from lost.cause
