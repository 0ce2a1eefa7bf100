"""Carry out the maintenance plan with Athena: ``OPTIMIZE`` per planned hour, ``VACUUM``.

The plan is the project's own (:func:`maintenance.plan_compaction`): for each closed hour
it selects, one statement

    OPTIMIZE analytics.events REWRITE DATA USING BIN_PACK
    WHERE client_ts >= TIMESTAMP '... UTC' AND client_ts < TIMESTAMP '... UTC'

with the hour range of the planned groups (:meth:`RewriteGroup.sql_predicate`), then
``VACUUM analytics.events`` for expiry and orphan removal (names unquoted: see
:func:`lakehouse.engines.athena.sql.maintenance_ref`). Athena decides which files
of the hour it rewrites (by the table's size thresholds); what it did is read back from
the ``replace`` snapshots it committed (``deleted-data-files``, ``added-data-files``,
sizes, records), so the results count real work. Athena neither deduplicates nor reports
what VACUUM deleted: ``duplicates_removed`` and the deleted-file counts stay 0, and
``snapshots_expired`` is counted from the table's metadata before and after.

The executor takes any statement runner (the tests send the same predicates to a real
Trino); the loop itself is the one every SQL engine shares
(:mod:`lakehouse.engines.sql_compaction`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from itertools import groupby
from typing import TYPE_CHECKING, Any

from lakehouse.engines.athena.client import AthenaClient
from lakehouse.engines.athena.config import AthenaConfig
from lakehouse.engines.athena.sql import optimize_sql, vacuum_sql
from lakehouse.engines.sql_compaction import (
    REWRITE_OPERATIONS,
    SqlCompaction,
    SqlStatement,
    dry_run_result,
    run_statements,
)
from lakehouse.settings import Settings, TableName
from maintenance.jobs import Job, JobRegistry, JobRun

if TYPE_CHECKING:
    from pyiceberg.table import Table

    from maintenance import (
        CompactionPlan,
        CompactionResult,
        ExpiryResult,
        MaintenanceOptions,
        ProgressReporter,
        RewriteGroup,
        RunResult,
    )

log = logging.getLogger(__name__)

StatementRunner = Callable[[str], "str | None"]  # runs one statement; returns a query id
TASK = "compaction"


@dataclass(frozen=True)
class HourStatement:
    """One planned hour: its groups and the statement that rewrites them."""

    hour: int
    groups: tuple[RewriteGroup, ...]
    sql: str


def optimize_statements(plan: CompactionPlan, table: TableName) -> list[HourStatement]:
    """One statement per planned hour, in hour order (no side effects)."""
    ordered = sorted(plan.groups, key=lambda g: (g.hour, g.part))
    out = []
    for hour, members in groupby(ordered, key=lambda g: g.hour):
        groups = tuple(members)
        predicate = groups[0].sql_predicate("client_ts")  # plain: Athena parses it Hive-style
        out.append(HourStatement(hour, groups, optimize_sql(table, predicate)))
    return out


def _is_rewrite(snapshot: Any, query_id: str | None) -> bool:
    # Athena's snapshot summaries do not name the query: every rewrite committed while
    # the statement ran is counted
    return snapshot.summary.operation.value in REWRITE_OPERATIONS


def _nothing_rewritten(label: str) -> str:
    return (
        f"athena committed no rewrite for {label} (its files met the table's size "
        "thresholds); compact it with `lakehouse maintain`"
    )


def execute_optimize(
    table: Table,
    plan: CompactionPlan,
    *,
    run: StatementRunner,
    table_name: TableName,
    dry_run: bool = False,
    reporter: ProgressReporter | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> CompactionResult:
    """Run one optimize statement per planned hour; count the rewrite snapshots each
    committed (:func:`lakehouse.engines.sql_compaction.run_statements`). A failed
    statement fails that hour's groups and the next hour still runs."""
    from maintenance.inventory import hour_label

    if dry_run:
        return dry_run_result(plan)
    engine = SqlCompaction(
        engine="athena",
        task=TASK,
        run=run,
        committed=_is_rewrite,
        nothing_type="NothingRewritten",
        nothing_message=_nothing_rewritten,
        nothing_retryable=False,
    )
    statements = [
        SqlStatement(hour_label(item.hour), item.groups, item.sql)
        for item in optimize_statements(plan, table_name)
    ]
    return run_statements(
        table, plan, statements, engine, reporter=reporter, should_stop=should_stop
    )


def execute_vacuum(
    table: Table,
    *,
    run: StatementRunner,
    table_name: TableName,
    dry_run: bool = False,
) -> ExpiryResult:
    """Run ``VACUUM``; ``snapshots_expired`` is what disappeared from the metadata."""
    from maintenance import ExpiryResult

    if dry_run:  # Athena cannot say what VACUUM would do
        return ExpiryResult(dry_run=True)
    table.refresh()
    before = {s.snapshot_id for s in table.metadata.snapshots}
    query_id = run(vacuum_sql(table_name))
    table.refresh()
    expired = tuple(sorted(before - {s.snapshot_id for s in table.metadata.snapshots}))
    log.info("athena vacuum (%s): %s snapshots expired", query_id, len(expired))
    return ExpiryResult(snapshots_expired=len(expired), expired_snapshot_ids=expired)


def athena_runner(client: AthenaClient) -> StatementRunner:
    def run(sql: str) -> str | None:
        return client.run(sql).query_id

    return run


def _athena(settings: Settings, client: AthenaClient | None) -> AthenaClient:
    return client or AthenaClient(AthenaConfig.from_env(settings))


def compact_with_athena(
    settings: Settings,
    plan: CompactionPlan,
    *,
    client: AthenaClient | None = None,
    table: Table | None = None,
    dry_run: bool = False,
    reporter: ProgressReporter | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> CompactionResult:
    """Carry out ``plan`` with one ``OPTIMIZE`` per planned hour (see the module doc)."""
    from lakehouse.tables import open_events_table

    return execute_optimize(
        table or open_events_table(settings),
        plan,
        run=athena_runner(_athena(settings, client)),
        table_name=settings.table,
        dry_run=dry_run,
        reporter=reporter,
        should_stop=should_stop,
    )


def vacuum_with_athena(
    settings: Settings,
    *,
    client: AthenaClient | None = None,
    table: Table | None = None,
    dry_run: bool = False,
) -> ExpiryResult:
    """``VACUUM`` the events table; ``snapshots_expired`` counted from the metadata."""
    from lakehouse.tables import open_events_table

    return execute_vacuum(
        table or open_events_table(settings),
        run=athena_runner(_athena(settings, client)),
        table_name=settings.table,
        dry_run=dry_run,
    )


@dataclass(frozen=True)
class AthenaState:
    """What the Athena jobs share in one run."""

    table_name: TableName
    run: StatementRunner
    plan: CompactionPlan | None


def _compaction(job: JobRun[AthenaState]) -> Any:
    from maintenance.plan import plan_compaction

    return execute_optimize(
        job.table,
        job.state.plan or plan_compaction(job.table, job.options.compaction, now=job.now),
        run=job.state.run,
        table_name=job.state.table_name,
        dry_run=job.options.dry_run,
        reporter=job.reporter,
        should_stop=job.stop,
    )


def _no_statement(job: JobRun[AthenaState]) -> None:
    return None  # Athena has no statement for it


def _vacuum(job: JobRun[AthenaState]) -> Any:
    return execute_vacuum(
        job.table, run=job.state.run, table_name=job.state.table_name, dry_run=job.options.dry_run
    )


def _orphans(job: JobRun[AthenaState]) -> Any:
    return None if "expiry" in job.done else _vacuum(job)  # VACUUM removes orphans too


ATHENA_JOBS: JobRegistry[AthenaState] = JobRegistry(
    "athena",
    [
        Job("compaction", _compaction),
        Job("manifests", _no_statement),
        Job("expiry", _vacuum),
        Job("orphans", _orphans, result="expiry"),
    ],
)


def run_maintenance_with_athena(
    settings: Settings,
    options: MaintenanceOptions | None = None,
    *,
    client: AthenaClient | None = None,
    table: Table | None = None,
    plan: CompactionPlan | None = None,
    reporter: ProgressReporter | None = None,
    should_stop: Callable[[], bool] | None = None,
    owner: str | None = None,
    now: datetime | None = None,
    jobs: JobRegistry[AthenaState] = ATHENA_JOBS,
) -> RunResult:
    """:func:`maintenance.run_maintenance` with Athena doing the work: under the same
    lease, the jobs in order, each job's result or failure recorded, the run's summary
    stored in ``lakehouse.maintenance.last-run`` (with ``"engine": "athena"``).

    ``compaction`` runs ``OPTIMIZE`` per hour of ``plan`` (default a fresh
    :func:`maintenance.plan_compaction`; ``now`` fixes its clock); ``expiry`` (or
    ``orphans``) runs one ``VACUUM``, reported as the expiry result (its retention comes
    from the table properties ``vacuum_max_snapshot_age_seconds`` and
    ``vacuum_min_snapshots_to_keep``, not from ``options``); ``manifests`` has no Athena
    statement and is skipped. A job ``jobs`` does not know is a
    :class:`~lakehouse.errors.UsageError`."""
    from lakehouse.tables import open_events_table
    from maintenance import MaintenanceOptions
    from maintenance.runner import run_jobs

    opts = options or MaintenanceOptions()
    events = table or open_events_table(settings)
    state = AthenaState(settings.table, athena_runner(_athena(settings, client)), plan)
    return run_jobs(
        events,
        opts,
        jobs,
        state,
        reporter=reporter,
        now=now,
        should_stop=should_stop,
        owner=owner,
        engine="athena",
    )
