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
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from pyiceberg.table import Table

from lakehouse.errors import LakehouseError, RetryableError
from maintenance.errors import LeaseHeldError
from maintenance.jobs import PYTHON_JOBS, JobRegistry, JobRun, MaintenanceOptions, PythonState
from maintenance.lease import TableLease
from maintenance.paths import DeleteFn
from maintenance.progress import NullReporter, ProgressReporter
from maintenance.results import RUN_RESULT_JOBS, JobFailure, RunResult

log = logging.getLogger(__name__)

LAST_RUN_PROPERTY = "lakehouse.maintenance.last-run"
S = TypeVar("S")


def run_jobs(
    table: Table,
    options: MaintenanceOptions,
    jobs: JobRegistry[S],
    state: S,
    *,
    reporter: ProgressReporter | None = None,
    now: datetime | None = None,
    should_stop: Callable[[], bool] | None = None,
    owner: str | None = None,
    engine: str | None = None,
) -> RunResult:
    """The orchestration every engine shares: check that ``jobs`` knows every job of
    ``options.jobs`` (default: all of ``jobs``, in its order; an unknown name is a
    :class:`~lakehouse.errors.UsageError` before anything runs), take the table's lease
    (skip the run if another owner holds it), run the jobs in order — the table
    refreshed before each, a job that raises recorded as a :class:`JobFailure` and the
    next one still run, a stop request honoured between jobs — then give the lease back
    with the run's summary (or record the summary without a lease) and log it.
    ``state`` is handed to every job (:class:`~maintenance.jobs.JobRun`)."""
    names = jobs.names if options.jobs is None else options.jobs
    jobs.check(names)
    progress = reporter or NullReporter()
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
        for job in map(jobs.get, names):
            if stop():
                log.info("stop requested: skipping %s and later jobs", job.name)
                break
            try:
                table.refresh()
                outcome = job.run(
                    JobRun(table, options, run_id, stop, dict(done), progress, now, state)
                )
                if outcome is not None:
                    done[job.result_field] = outcome
            except Exception as exc:  # recorded, and the next job still runs
                log.error(
                    "%s job %s failed: %s: %s",
                    label,
                    job.name,
                    type(exc).__name__,
                    exc,
                    # ours say what happened (a lost race, an outage): no traceback for them
                    exc_info=not isinstance(exc, LakehouseError),
                )
                failures.append(JobFailure(job.name, type(exc).__name__, str(exc)))
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
        other_jobs=tuple((k, v) for k, v in done.items() if k not in RUN_RESULT_JOBS),
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
    jobs: JobRegistry[PythonState] | None = None,
) -> RunResult:
    """Run every job once (``jobs``: the registry, default :data:`~maintenance.jobs.PYTHON_JOBS`). ``should_stop`` is polled between groups and jobs (graceful
    shutdown); ``delete`` replaces the FileIO delete for expiry and orphans; ``now``
    fixes the clock the retention windows and hot hours are judged by."""
    return run_jobs(
        table,
        options or MaintenanceOptions(),
        PYTHON_JOBS if jobs is None else jobs,
        PythonState(delete),
        reporter=reporter,
        now=now,
        should_stop=should_stop,
        owner=owner,
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
