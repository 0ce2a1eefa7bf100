"""Maintenance carried out by Trino: the same plan and jobs, executed by the SQL engine.

For tables larger than one machine should rewrite, ``lakehouse maintain run --engine
trino`` hands the work to Trino: the compaction plan is made by :mod:`maintenance`
exactly as for the Python run and carried out by ``optimize``
(:func:`~lakehouse.trino.optimize.compact_with_trino`), then ``optimize_manifests``,
``expire_snapshots`` and ``remove_orphan_files`` (:mod:`lakehouse.trino.procedures`),
under the same table lease, returning the same :class:`~maintenance.RunResult`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from lakehouse.settings import Settings
from lakehouse.trino import procedures
from lakehouse.trino.client import connect
from lakehouse.trino.optimize import compact_with_trino, session_properties
from maintenance.plan import CompactionPlan, plan_compaction
from maintenance.progress import NullReporter, ProgressReporter
from maintenance.results import RunResult
from maintenance.runner import JobContext, MaintenanceOptions, run_jobs

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

    opts = options or MaintenanceOptions()
    progress = reporter or NullReporter()
    events = table or open_events_table(settings)
    connections: list[Connection] = []  # opened at the first job: none for a skipped run

    def job_fn(job: str, ctx: JobContext) -> tuple[str, Any]:
        if not connections:
            connections.append(
                connect(
                    settings,
                    port,
                    session_properties=session_properties(opts.compaction.target_file_size),
                )
            )
        return job, _job(
            job,
            events,
            settings,
            connections[0],
            opts,
            plan,
            progress,
            ctx.stop,
            now,
            hours_per_statement,
        )

    try:
        return run_jobs(events, opts, job_fn, should_stop=should_stop, owner=owner, engine="trino")
    finally:
        for conn in connections:
            conn.close()  # type: ignore[no-untyped-call]


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
