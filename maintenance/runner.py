"""One maintenance run: compaction, manifests, snapshot expiry, orphan removal, in that
order, under the table's maintenance lease. This is what ``lakehouse maintain run`` (and
so cron, a Kubernetes CronJob or Airflow) calls; ``maintain serve`` calls it in a loop.

Each job reports its own result; a job that raises is recorded as a :class:`JobFailure`
and the next job still runs. The run's summary is logged and stored in the table property
``lakehouse.maintenance.last-run`` (which :func:`maintenance.health.maintenance_lag` reads).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pyiceberg.table import Table

from lakehouse.errors import LakehouseError, RetryableError, UsageError
from maintenance.compact import compact
from maintenance.errors import LeaseHeldError
from maintenance.expire import DEFAULT_RETENTION, expire_snapshots
from maintenance.lease import DEFAULT_LEASE_TTL, TableLease
from maintenance.manifests import DEFAULT_MAX_MANIFESTS, rewrite_manifests
from maintenance.orphans import (
    DEFAULT_ORPHAN_RETENTION,
    check_orphan_retention,
    remove_orphan_files,
)
from maintenance.paths import DeleteFn
from maintenance.plan import CompactionOptions
from maintenance.progress import NullReporter, ProgressReporter
from maintenance.results import JobFailure, RunResult

log = logging.getLogger(__name__)

LAST_RUN_PROPERTY = "lakehouse.maintenance.last-run"
JOBS = ("compaction", "manifests", "expiry", "orphans")


@dataclass(frozen=True)
class MaintenanceOptions:
    """Everything one run needs to know. Durations are ``timedelta``s."""

    compaction: CompactionOptions = field(default_factory=CompactionOptions)
    snapshot_retention: timedelta = DEFAULT_RETENTION
    retain_last: int = 1
    orphan_retention: timedelta = DEFAULT_ORPHAN_RETENTION
    max_manifests: int = DEFAULT_MAX_MANIFESTS
    dry_run: bool = False
    lease: bool = True
    lease_ttl: timedelta = DEFAULT_LEASE_TTL
    jobs: tuple[str, ...] = JOBS
    force: bool = False  # accept an orphan retention under 24 hours

    def __post_init__(self) -> None:
        unknown = set(self.jobs) - set(JOBS)
        if unknown:
            raise UsageError(
                f"unknown maintenance jobs {sorted(unknown)}; choose from {', '.join(JOBS)}"
            )
        if self.retain_last < 1:
            raise UsageError("--retain-last must be at least 1")
        if min(self.snapshot_retention, self.orphan_retention) < timedelta(0):
            raise UsageError("retention windows cannot be negative")
        if "orphans" in self.jobs and not self.dry_run:
            check_orphan_retention(self.orphan_retention, force=self.force)


@dataclass(frozen=True)
class JobContext:
    """What an engine's job function gets: the run id, the stop check (graceful shutdown
    or a lost lease), and the results of the jobs done so far in this run."""

    run_id: str
    stop: Callable[[], bool]
    done: Mapping[str, Any]


JobFn = Callable[[str, JobContext], "tuple[str, Any] | None"]
"""Runs one job of ``MaintenanceOptions.jobs``; returns (the ``RunResult`` field its result
goes to, the result), or None when the engine has nothing to do for that job."""


def run_jobs(
    table: Table,
    options: MaintenanceOptions,
    run_job: JobFn,
    *,
    should_stop: Callable[[], bool] | None = None,
    owner: str | None = None,
    engine: str | None = None,
) -> RunResult:
    """The orchestration every engine shares: take the table's lease (skip the run if
    another owner holds it), run ``options.jobs`` in order through ``run_job`` — the
    table refreshed before each, a job that raises recorded as a :class:`JobFailure` and
    the next one still run, a stop request honoured between jobs — then give the lease
    back with the run's summary (or record the summary without a lease) and log it."""
    run_id = uuid.uuid4().hex[:12]
    started = datetime.now(UTC)
    name = ".".join(table.name())
    label = f"{engine} maintenance" if engine else "maintenance"
    lease: TableLease | None = None
    if options.lease and not options.dry_run:
        lease = TableLease(table, owner=owner, ttl=options.lease_ttl)
        try:
            lease.acquire()
        except LeaseHeldError as exc:
            log.warning("%s of %s skipped: %s", label, name, exc)
            return RunResult(
                name, run_id, started, datetime.now(UTC), False, skipped_reason=str(exc)
            )

    def stop() -> bool:
        if should_stop is not None and should_stop():
            return True
        return lease is not None and not lease.renew_if_due()

    done: dict[str, Any] = {}
    failures: list[JobFailure] = []
    try:
        for job in options.jobs:
            if stop():
                log.info("stop requested: skipping %s and later jobs", job)
                break
            try:
                table.refresh()
                outcome = run_job(job, JobContext(run_id, stop, done))
                if outcome is not None:
                    done[outcome[0]] = outcome[1]
            except Exception as exc:  # recorded, and the next job still runs
                log.error(
                    "%s job %s failed: %s: %s",
                    label,
                    job,
                    type(exc).__name__,
                    exc,
                    # ours say what happened (a lost race, an outage): no traceback for them
                    exc_info=not isinstance(exc, LakehouseError),
                )
                failures.append(JobFailure(job, type(exc).__name__, str(exc)))
    except BaseException:  # interrupted: give the lease back before leaving
        if lease is not None:
            lease.release()
        raise
    result = RunResult(
        table=name,
        run_id=run_id,
        started_at=started,
        finished_at=datetime.now(UTC),
        dry_run=options.dry_run,
        compaction=done.get("compaction"),
        manifests=done.get("manifests"),
        expiry=done.get("expiry"),
        orphans=done.get("orphans"),
        job_failures=tuple(failures),
    )
    summary = last_run_summary(result, owner=lease.owner if lease else owner)
    if engine:
        summary["engine"] = engine
    if lease is not None:
        try:
            lease.release({LAST_RUN_PROPERTY: json.dumps(summary, separators=(",", ":"))})
        except RetryableError as exc:  # e.g. the catalog went down: the work itself is done
            log.warning(
                "could not give back the maintenance lease of %s (it lapses after %s; the "
                "same owner may take it again at once): %s",
                name,
                options.lease_ttl,
                exc,
            )
    elif not options.dry_run:
        _record(table, summary)
    log.log(
        logging.INFO if result.ok else logging.WARNING,
        "%s run of %s: %s",
        label,
        name,
        json.dumps(summary),
    )
    return result


def run_maintenance(
    table: Table,
    options: MaintenanceOptions | None = None,
    *,
    reporter: ProgressReporter | None = None,
    should_stop: Callable[[], bool] | None = None,
    delete: DeleteFn | None = None,
    owner: str | None = None,
    now: datetime | None = None,
) -> RunResult:
    """Run every job once. ``should_stop`` is polled between groups and jobs (graceful
    shutdown); ``delete`` replaces the FileIO delete for expiry and orphans; ``now``
    fixes the clock the retention windows and hot hours are judged by."""
    opts = options or MaintenanceOptions()
    progress = reporter or NullReporter()

    def job_fn(job: str, ctx: JobContext) -> tuple[str, Any]:
        return job, _run_job(job, table, opts, progress, ctx.stop, delete, ctx.run_id, now)

    return run_jobs(table, opts, job_fn, should_stop=should_stop, owner=owner)


def _run_job(
    job: str,
    table: Table,
    options: MaintenanceOptions,
    reporter: ProgressReporter,
    stop: Callable[[], bool],
    delete: DeleteFn | None,
    run_id: str,
    now: datetime | None,
) -> Any:
    if job == "compaction":
        return compact(
            table,
            options.compaction,
            dry_run=options.dry_run,
            reporter=reporter,
            should_stop=stop,
            run_id=run_id,
            now=now,
        )
    if job == "manifests":
        return rewrite_manifests(
            table, max_manifests=options.max_manifests, dry_run=options.dry_run
        )
    if job == "expiry":
        return expire_snapshots(
            table,
            retention=options.snapshot_retention,
            retain_last=options.retain_last,
            now=now,
            dry_run=options.dry_run,
            delete=delete,
        )
    return remove_orphan_files(
        table,
        older_than=options.orphan_retention,
        now=now,
        dry_run=options.dry_run,
        delete=delete,
        force=options.force,
    )


def last_run_summary(result: RunResult, *, owner: str | None = None) -> dict[str, Any]:
    """The compact record of a run stored in the table's ``last-run`` property."""
    return {
        "run_id": result.run_id,
        "owner": owner,
        "started_at": result.started_at.isoformat(),
        "finished_at": result.finished_at.isoformat(),
        "ok": result.ok,
        "dry_run": result.dry_run,
        **result.counts(),
        "failed_groups": [f.group_id for f in result.failures],
        "failed_jobs": [f.job for f in result.job_failures],
    }


def _record(table: Table, summary: dict[str, Any]) -> None:
    try:
        table.transaction().set_properties(
            {LAST_RUN_PROPERTY: json.dumps(summary, separators=(",", ":"))}
        ).commit_transaction()
    except Exception as exc:  # the run's work is done; only its record is missing
        log.warning("could not record the maintenance run on %s: %s", ".".join(table.name()), exc)
