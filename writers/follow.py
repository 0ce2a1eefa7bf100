"""Continuous ingest: a loop over any source, one cycle every ``every``.

Each cycle opens the tables afresh, plans the source again (a landing zone is listed
again) and ingests what is new through :func:`writers.ingest.ingest_source`, then waits
for the next cycle. Nothing is kept between cycles but the cycle count: what is done is
what the ledger says, so a follower that is killed and started again, or two followers
that run at once, still commit every position exactly once (batch keys and the ledger,
as for a single run).

A cycle that fails — the catalog or the storage unreachable, a bug — is reported like
any other and the loop goes on; after failures in a row the wait grows (doubling from
``every`` up to ``max_backoff``). Only a configuration or usage error in the very first
cycle ends the loop (a wrong path or a missing table will not fix itself). A stop request
(:class:`threading.Event`, set by SIGTERM/SIGINT in the CLI) is honoured between batches:
the commit in flight finishes, the rest waits for the next start.

An optional :class:`Turn` (a lease) lets several followers of one zone and table take
turns: a follower that does not hold it reports a standby cycle and does nothing. The
lease only saves work; correctness never depends on it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from lakehouse.errors import ConfigError, UsageError
from lakehouse.redact import redact_text
from lakehouse.storage import transient_storage_error
from writers.ingest import ingest_source
from writers.sources.base import Source
from writers.writer import EventWriter

log = logging.getLogger(__name__)

DEFAULT_EVERY = timedelta(seconds=30)
DEFAULT_SETTLE = timedelta(seconds=10)
DEFAULT_MAX_BACKOFF = timedelta(minutes=5)


class Turn(Protocol):
    """Who may work now, among followers of one zone and table (a lease)."""

    def take(self, writer: EventWriter) -> str | None:
        """Take or keep the turn before a cycle: None when this follower may work, else
        why not (another holds it)."""
        ...

    def keep(self) -> bool:
        """Asked between batches: False when the turn was lost (stop the cycle)."""
        ...

    def give_back(self) -> None:
        """Leave the turn at the end (best effort)."""
        ...


@dataclass(frozen=True)
class CycleReport:
    """What one cycle did. ``files`` counts the positions committed, ``records`` the
    records read (``written + duplicates + rejected``); ``errors`` holds what made the
    cycle fail (``type``, ``message``, ``retryable``); ``standby`` says another follower
    held the turn; ``stopped`` that a stop request cut the cycle short; ``next_in`` the
    seconds until the next cycle."""

    cycle: int
    started_at: datetime
    files: int = 0
    records: int = 0
    written: int = 0
    duplicates: int = 0
    rejected: int = 0
    late: int = 0
    commits: int = 0
    seconds: float = 0.0
    errors: tuple[dict[str, Any], ...] = ()
    standby: str | None = None
    stopped: bool = False
    next_in: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["started_at"] = self.started_at.isoformat()
        out["errors"] = list(self.errors)
        out["seconds"] = round(self.seconds, 3)
        out["next_in"] = round(self.next_in, 3)
        return out


@dataclass(frozen=True)
class FollowResult:
    """The whole run: cycles, failed cycles, and the sums over every cycle."""

    cycles: int = 0
    failed_cycles: int = 0
    standby_cycles: int = 0
    files: int = 0
    records: int = 0
    rejected: int = 0
    late: int = 0
    reports: tuple[CycleReport, ...] = field(default=(), repr=False)

    def add(self, report: CycleReport) -> FollowResult:
        return FollowResult(
            cycles=self.cycles + 1,
            failed_cycles=self.failed_cycles + (not report.ok),
            standby_cycles=self.standby_cycles + (report.standby is not None),
            files=self.files + report.files,
            records=self.records + report.records,
            rejected=self.rejected + report.rejected,
            late=self.late + report.late,
        )


def backoff(every: timedelta, failures: int, max_backoff: timedelta) -> float:
    """Seconds to wait after ``failures`` failed cycles in a row: ``every`` doubled per
    failure after the first, never more than ``max_backoff`` (nor less than ``every``)."""
    if failures <= 0:
        return every.total_seconds()
    cap = max(every, max_backoff).total_seconds()
    return float(min(cap, every.total_seconds() * 2 ** min(failures - 1, 30)))


def follow(
    make_source: Callable[[EventWriter], Source],
    make_writer: Callable[[], EventWriter],
    *,
    every: timedelta = DEFAULT_EVERY,
    stop: threading.Event | None = None,
    on_cycle: Callable[[CycleReport], None] | None = None,
    turn: Turn | None = None,
    max_cycles: int = 0,
    max_backoff: timedelta = DEFAULT_MAX_BACKOFF,
) -> FollowResult:
    """Ingest from the source ``make_source(writer)`` gives, every ``every``, until
    ``stop`` is set (or ``max_cycles`` cycles ran, 0: no limit). ``make_writer`` gives a
    fresh writer (tables opened again) for each cycle. ``on_cycle`` gets each cycle's
    report. Returns the sums."""
    stop = stop or threading.Event()
    total = FollowResult()
    failures = 0
    cycle = 0
    try:
        while not stop.is_set():
            cycle += 1
            report, failure = _cycle(cycle, make_source, make_writer, stop, turn)
            if cycle == 1 and isinstance(failure, (ConfigError, UsageError)):
                raise failure  # a wrong path or a missing table will not fix itself
            failures = failures + 1 if report.errors else 0
            wait = backoff(every, failures, max_backoff)
            if not report.errors:  # the cadence counts from the cycle's start
                wait = max(0.0, wait - report.seconds)
            last = bool(max_cycles and cycle >= max_cycles) or stop.is_set()
            report = replace(report, next_in=0.0 if last else wait)
            total = total.add(report)
            if on_cycle is not None:
                on_cycle(report)
            if last:
                break
            stop.wait(wait)
    finally:
        if turn is not None:
            turn.give_back()
    return total


def _cycle(
    number: int,
    make_source: Callable[[EventWriter], Source],
    make_writer: Callable[[], EventWriter],
    stop: threading.Event,
    turn: Turn | None,
) -> tuple[CycleReport, Exception | None]:
    started_at = datetime.now(UTC)
    started = time.perf_counter()
    try:
        writer = make_writer()
        if turn is not None:
            held_by = turn.take(writer)
            if held_by is not None:
                took = time.perf_counter() - started
                return CycleReport(number, started_at, seconds=took, standby=held_by), None

        def should_stop() -> bool:
            return stop.is_set() or (turn is not None and not turn.keep())

        result = ingest_source(make_source(writer), writer=writer, should_stop=should_stop)
    # reported, and the next cycle comes (a bad file is a reject, not an exception)
    except Exception as raised:
        log.debug("ingest cycle %d failed", number, exc_info=raised)
        exc: Exception = transient_storage_error(raised) or raised
        took = time.perf_counter() - started
        return CycleReport(number, started_at, seconds=took, errors=(_error(exc),)), exc
    report = CycleReport(
        number,
        started_at,
        files=result.files,
        records=result.records_read,
        written=result.records_written,
        duplicates=result.duplicates_dropped,
        rejected=result.records_rejected,
        late=result.late_records,
        commits=result.commits,
        seconds=time.perf_counter() - started,
        stopped=stop.is_set(),
    )
    return report, None


def _error(exc: Exception) -> dict[str, Any]:
    return {
        "type": type(exc).__name__,
        "message": redact_text(" ".join(str(exc).split()) or type(exc).__name__),
        "retryable": bool(getattr(exc, "retryable", False)),
    }
