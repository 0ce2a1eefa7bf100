"""Maintenance carried out by Trino: the same plan and jobs, executed by the SQL engine.

For tables larger than one machine should rewrite, ``lakehouse maintain run --engine
trino`` hands the work to Trino: the compaction plan is made by :mod:`maintenance`
exactly as for the Python run and carried out by ``optimize``
(:func:`~lakehouse.engines.trino.optimize.compact_with_trino`), then ``optimize_manifests``,
``expire_snapshots`` and ``remove_orphan_files`` (:mod:`lakehouse.engines.trino.procedures`),
under the same table lease, returning the same :class:`~maintenance.RunResult`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from lakehouse.engines.trino import procedures
from lakehouse.engines.trino.client import connect, query
from lakehouse.engines.trino.optimize import compact_with_trino, session_properties
from lakehouse.settings import Settings
from maintenance.jobs import Job, JobRegistry, JobRun, MaintenanceOptions
from maintenance.plan import CompactionPlan, plan_compaction
from maintenance.progress import ProgressReporter
from maintenance.results import RunResult
from maintenance.runner import run_jobs

if TYPE_CHECKING:
    from pyiceberg.table import Table
    from trino.dbapi import Connection

log = logging.getLogger(__name__)


@dataclass
class TrinoState:
    """What the Trino jobs share in one run: the settings, the port, the plan (None: a
    fresh one) and the connection, opened by the first job (none for a skipped run)."""

    settings: Settings
    port: int | None
    plan: CompactionPlan | None
    hours_per_statement: int
    target_file_size: int
    connections: list[Connection] = field(default_factory=list)

    def connection(self) -> Connection:
        if not self.connections:
            self.connections.append(
                connect(
                    self.settings,
                    self.port,
                    session_properties=session_properties(self.target_file_size),
                )
            )
        return self.connections[0]

    def close(self) -> None:
        for conn in self.connections:
            conn.close()  # type: ignore[no-untyped-call]


def _compaction(run: JobRun[TrinoState]) -> Any:
    conn = run.state.connection()
    plan = run.state.plan or plan_compaction(run.table, run.options.compaction, now=run.now)
    return compact_with_trino(
        plan,
        run.state.settings,
        table=run.table,
        connection=conn,
        hours_per_statement=run.state.hours_per_statement,
        dry_run=run.options.dry_run,
        reporter=run.reporter,
        should_stop=run.stop,
    )


def _manifests(run: JobRun[TrinoState]) -> Any:
    return procedures.optimize_manifests(
        run.table,
        run.state.settings,
        run.state.connection(),
        max_manifests=run.options.max_manifests,
        dry_run=run.options.dry_run,
    )


def _expiry(run: JobRun[TrinoState]) -> Any:
    return procedures.expire_snapshots(
        run.table,
        run.state.settings,
        run.state.connection(),
        retention=run.options.snapshot_retention,
        retain_last=run.options.retain_last,
        now=run.now,
        dry_run=run.options.dry_run,
    )


def _orphans(run: JobRun[TrinoState]) -> Any:
    return procedures.remove_orphan_files(
        run.table,
        run.state.settings,
        run.state.connection(),
        older_than=run.options.orphan_retention,
        now=run.now,
        dry_run=run.options.dry_run,
    )


TRINO_JOBS: JobRegistry[TrinoState] = JobRegistry(
    "trino",
    [
        Job("compaction", _compaction),
        Job("manifests", _manifests),
        Job("expiry", _expiry),
        Job("orphans", _orphans),
    ],
)


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
    jobs: JobRegistry[TrinoState] = TRINO_JOBS,
) -> RunResult:
    """:func:`maintenance.run_maintenance` with Trino doing the work: every job of
    ``options.jobs`` once, in the same order, under the same lease, recorded in the same
    ``lakehouse.maintenance.last-run`` property (with ``"engine": "trino"``).

    The compaction plan is ``plan`` or a fresh :func:`maintenance.plan_compaction`
    (``now`` fixes the clock hot hours are judged by). A job that raises is recorded as a
    :class:`~maintenance.JobFailure` and the next job still runs; a job ``jobs`` does not
    know is a :class:`~lakehouse.errors.UsageError`. ``hours_per_statement``: contiguous
    planned hours per ``optimize`` (1: one statement per planned hour)."""
    from lakehouse.tables import open_events_table

    opts = options or MaintenanceOptions()
    events = table or open_events_table(settings)
    state = TrinoState(settings, port, plan, hours_per_statement, opts.compaction.target_file_size)
    try:
        return run_jobs(
            events,
            opts,
            jobs,
            state,
            reporter=reporter,
            now=now,
            should_stop=should_stop,
            owner=owner,
            engine="trino",
        )
    finally:
        state.close()


def maintain_with_trino(
    settings: Settings,
    options: MaintenanceOptions,
    *,
    reporter: ProgressReporter | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> RunResult:
    """The ``maintenance`` capability of the ``trino`` engine (``lakehouse maintain run
    --engine trino``): one clear error first when no server answers, then the run."""
    query("SELECT 1", settings=settings)
    return run_maintenance_with_trino(settings, options, reporter=reporter, should_stop=should_stop)


__all__ = ["TRINO_JOBS", "compact_with_trino", "maintain_with_trino", "run_maintenance_with_trino"]
