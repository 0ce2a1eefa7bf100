"""Maintenance carried out by Trino: the same plan and jobs, executed by the SQL engine.

For tables larger than one machine should rewrite, ``lakehouse maintain run --engine
trino`` hands the work to Trino: the compaction plan is made by :mod:`maintenance`
exactly as for the Python run and carried out by ``optimize``
(:func:`~lakehouse.trino.optimize.compact_with_trino`), then ``optimize_manifests``,
``expire_snapshots`` and ``remove_orphan_files`` (:mod:`lakehouse.trino.procedures`),
under the same table lease, returning the same :class:`~maintenance.RunResult`.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from lakehouse.settings import Settings
from lakehouse.trino import procedures
from lakehouse.trino.client import connect
from lakehouse.trino.optimize import compact_with_trino, session_properties
from maintenance.errors import LeaseHeldError
from maintenance.lease import TableLease
from maintenance.plan import CompactionPlan, plan_compaction
from maintenance.progress import NullReporter, ProgressReporter
from maintenance.results import JobFailure, RunResult
from maintenance.runner import LAST_RUN_PROPERTY, MaintenanceOptions, last_run_summary

if TYPE_CHECKING:
    from pyiceberg.table import Table
    from trino.dbapi import Connection

log = logging.getLogger(__name__)


def run_maintenance_with_trino(
    settings: Settings,
    options: MaintenanceOptions | None = None,
    *,
    port: int | None = None,
    table: Table | None = None,
    plan: CompactionPlan | None = None,
    reporter: ProgressReporter | None = None,
    should_stop: Callable[[], bool] | None = None,
    owner: str | None = None,
    now: datetime | None = None,
    hours_per_statement: int = 1,
) -> RunResult:
    """:func:`maintenance.run_maintenance` with Trino doing the work: every job of
    ``options.jobs`` once, in the same order, under the same lease, recorded in the same
    ``lakehouse.maintenance.last-run`` property (with ``"engine": "trino"``).

    The compaction plan is ``plan`` or a fresh :func:`maintenance.plan_compaction`
    (``now`` fixes the clock hot hours are judged by). A job that raises is recorded as a
    :class:`~maintenance.JobFailure` and the next job still runs. ``hours_per_statement``:
    contiguous planned hours per ``optimize`` (1: one statement per planned hour)."""
    from lakehouse.read.source import open_events_table

    options = options or MaintenanceOptions()
    reporter = reporter or NullReporter()
    table = table or open_events_table(settings)
    run_id = uuid.uuid4().hex[:12]
    started = datetime.now(UTC)
    name = ".".join(table.name())
    lease: TableLease | None = None
    if options.lease and not options.dry_run:
        lease = TableLease(table, owner=owner, ttl=options.lease_ttl)
        try:
            lease.acquire()
        except LeaseHeldError as exc:
            log.warning("maintenance of %s skipped: %s", name, exc)
            return RunResult(
                name, run_id, started, datetime.now(UTC), False, skipped_reason=str(exc)
            )

    def stop() -> bool:
        if should_stop is not None and should_stop():
            return True
        return lease is not None and not lease.renew_if_due()

    done: dict[str, Any] = {}
    failures: list[JobFailure] = []
    conn = connect(
        settings, port, session_properties=session_properties(options.compaction.target_file_size)
    )
    try:
        for job in options.jobs:
            if stop():
                log.info("stop requested: skipping %s and later jobs", job)
                break
            try:
                table.refresh()
                done[job] = _job(
                    job,
                    table,
                    settings,
                    conn,
                    options,
                    plan,
                    reporter,
                    stop,
                    now,
                    hours_per_statement,
                )
            except Exception as exc:  # recorded, and the next job still runs
                log.error("trino maintenance job %s failed: %s", job, exc, exc_info=True)
                failures.append(JobFailure(job, type(exc).__name__, str(exc)))
    except BaseException:
        if lease is not None:
            lease.release()
        raise
    finally:
        conn.close()  # type: ignore[no-untyped-call]
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
    summary = {**last_run_summary(result, owner=lease.owner if lease else owner), "engine": "trino"}
    record = {LAST_RUN_PROPERTY: json.dumps(summary, separators=(",", ":"))}
    if lease is not None:
        lease.release(record)
    elif not options.dry_run:
        try:
            table.transaction().set_properties(record).commit_transaction()
        except Exception as exc:  # the run's work is done; only its record is missing
            log.warning("could not record the maintenance run on %s: %s", name, exc)
    log.info("trino maintenance run of %s: %s", name, json.dumps(summary))
    return result


def _job(
    job: str,
    table: Table,
    settings: Settings,
    conn: Connection,
    options: MaintenanceOptions,
    plan: CompactionPlan | None,
    reporter: ProgressReporter,
    stop: Callable[[], bool],
    now: datetime | None,
    hours_per_statement: int,
) -> Any:
    if job == "compaction":
        plan = plan or plan_compaction(table, options.compaction, now=now)
        return compact_with_trino(
            plan,
            settings,
            table=table,
            connection=conn,
            hours_per_statement=hours_per_statement,
            dry_run=options.dry_run,
            reporter=reporter,
            should_stop=stop,
        )
    if job == "manifests":
        return procedures.optimize_manifests(
            table, settings, conn, max_manifests=options.max_manifests, dry_run=options.dry_run
        )
    if job == "expiry":
        return procedures.expire_snapshots(
            table,
            settings,
            conn,
            retention=options.snapshot_retention,
            retain_last=options.retain_last,
            now=now,
            dry_run=options.dry_run,
        )
    return procedures.remove_orphan_files(
        table, settings, conn, older_than=options.orphan_retention, now=now, dry_run=options.dry_run
    )


__all__ = ["compact_with_trino", "run_maintenance_with_trino"]
