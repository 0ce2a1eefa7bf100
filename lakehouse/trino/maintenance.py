"""Maintenance carried out by Trino: the same plan, executed by the SQL engine.

For tables larger than one machine should rewrite, ``lakehouse maintain run --engine
trino`` hands the work to Trino: the plan is made by :mod:`maintenance` exactly as for
the Python run, then each planned hour partition becomes one

    ALTER TABLE <t> EXECUTE optimize(file_size_threshold => '<bytes>B')
    WHERE client_ts >= TIMESTAMP '<hour start>' AND client_ts < TIMESTAMP '<hour end>'

followed by ``optimize_manifests``, ``expire_snapshots`` and ``remove_orphan_files``
(:mod:`lakehouse.trino.procedures`), under the same table lease, with the same result
objects (:class:`~maintenance.CompactionResult`, :class:`~maintenance.RunResult`).

Differences from the Python compaction, all visible in the results:

* counts come from the snapshot each ``optimize`` committed (found by Trino's query id in
  its summary): files, bytes and records removed and added;
* Trino does not deduplicate: ``duplicates_removed`` is 0 and an hour planned only for
  duplicates keeps them (``records_added == records_rewritten``);
* Trino leaves an hour holding a single data file untouched (even when it is unsorted):
  such an hour is reported in ``skipped`` with the reason;
* one ``optimize`` rewrites the whole hour, so an hour the planner split into several
  groups is one commit (every group of it counts as committed);
* Trino sorts what it writes by the table's sort order ``(client_ts, event_id)`` but
  records sort order id 0 in the manifests, and its snapshots carry no
  ``lakehouse.kind``.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from lakehouse.errors import LakehouseError
from lakehouse.settings import Settings
from lakehouse.trino import procedures
from lakehouse.trino.client import connect, query
from lakehouse.trino.errors import TrinoQueryError
from lakehouse.trino.sql import size_literal, table_ref, timestamp_literal
from maintenance.errors import LeaseHeldError
from maintenance.inventory import hour_label
from maintenance.lease import TableLease
from maintenance.plan import CompactionPlan, RewriteGroup, plan_compaction
from maintenance.progress import NullReporter, ProgressReporter
from maintenance.results import CompactionResult, GroupFailure, JobFailure, RunResult
from maintenance.runner import LAST_RUN_PROPERTY, MaintenanceOptions, last_run_summary

if TYPE_CHECKING:
    from pyiceberg.table import Table
    from trino.dbapi import Connection

log = logging.getLogger(__name__)

TASK = "compaction (trino)"
TARGET_SIZE_PROPERTY = "target_max_file_size"  # Trino Iceberg session property
_CONFLICT_MARKERS = ("conflict", "CommitFailed", "ValidationException", "concurrent")


@dataclass(frozen=True)
class HourCommit:
    """What one ``optimize`` of one hour committed (from its snapshot's summary)."""

    hour: int
    groups: int
    snapshot_id: int | None  # None: Trino committed nothing
    operation: str | None
    files_removed: int = 0
    files_added: int = 0
    bytes_removed: int = 0
    bytes_added: int = 0
    records_removed: int = 0
    records_added: int = 0


def optimize_sql(table_sql: str, group: RewriteGroup, threshold: int) -> str:
    """The ``optimize`` statement of ``group``'s hour (Trino takes no ``?`` parameters in
    ``ALTER TABLE ... EXECUTE``: the literals are rendered from typed values)."""
    return (
        f"ALTER TABLE {table_sql} EXECUTE optimize(file_size_threshold => "
        f"{size_literal(threshold)})\n"
        f"WHERE client_ts >= {timestamp_literal(group.start)} "
        f"AND client_ts < {timestamp_literal(group.end)}"
    )


def hour_threshold(groups: list[RewriteGroup], target_file_size: int) -> int:
    """A ``file_size_threshold`` above every planned file of the hour (Trino rewrites the
    files smaller than it), and at least the target size."""
    largest = max((f.size for g in groups for f in g.files), default=0)
    return max(target_file_size, largest + 1)


def find_commit(table: Table, query_id: str | None) -> tuple[int, str, dict[str, str]] | None:
    """The snapshot Trino committed for ``query_id`` (its summary names the query)."""
    if not query_id:
        return None
    table.refresh()
    for snapshot in reversed(table.metadata.snapshots):
        summary = snapshot.summary
        if summary is not None and summary.get("trino_query_id") == query_id:
            operation = summary.operation.value
            return snapshot.snapshot_id, operation, dict(summary.additional_properties)
    return None


def _int(summary: dict[str, str], key: str) -> int:
    return int(summary.get(key, 0) or 0)


def _optimize_hour(
    table: Table,
    settings: Settings,
    connection: Connection,
    groups: list[RewriteGroup],
    target_file_size: int,
) -> HourCommit:
    sql = optimize_sql(table_ref(settings), groups[0], hour_threshold(groups, target_file_size))
    result = query(sql, connection=connection)
    found = find_commit(table, result.query_id)
    if found is None:
        return HourCommit(groups[0].hour, len(groups), None, None)
    snapshot_id, operation, summary = found
    return HourCommit(
        hour=groups[0].hour,
        groups=len(groups),
        snapshot_id=snapshot_id,
        operation=operation,
        files_removed=_int(summary, "deleted-data-files"),
        files_added=_int(summary, "added-data-files"),
        bytes_removed=_int(summary, "removed-files-size"),
        bytes_added=_int(summary, "added-files-size"),
        records_removed=_int(summary, "deleted-records"),
        records_added=_int(summary, "added-records"),
    )


def _failure(group: RewriteGroup, error_type: str, message: str, retryable: bool) -> GroupFailure:
    return GroupFailure(group.group_id, hour_label(group.hour), error_type, message, retryable)


def compact_with_trino(
    plan: CompactionPlan,
    settings: Settings,
    *,
    port: int | None = None,
    table: Table | None = None,
    connection: Connection | None = None,
    dry_run: bool = False,
    reporter: ProgressReporter | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> CompactionResult:
    """Carry out ``plan`` with Trino's ``optimize``, one statement per planned hour.

    A failed hour is reported (retryable when Trino lost a commit race: in ``skipped``,
    else in ``failures``) and the next hour still runs; ``should_stop`` is asked between
    hours. ``table`` (default: the settings' events table) is read for the counts."""
    if dry_run:
        return CompactionResult(
            groups_planned=len(plan.groups),
            files_rewritten=plan.files,
            bytes_rewritten=plan.bytes,
            records_rewritten=sum(g.records for g in plan.groups),
            dry_run=True,
        )
    from lakehouse.read.source import open_events_table

    table = table or open_events_table(settings)
    reporter = reporter or NullReporter()
    by_hour: dict[int, list[RewriteGroup]] = {}
    for group in plan.groups:
        by_hour.setdefault(group.hour, []).append(group)
    own = connection is None
    conn = connection or connect(
        settings, port, session_properties=_session(settings, plan.options.target_file_size)
    )
    commits: list[HourCommit] = []
    skipped: list[GroupFailure] = []
    failures: list[GroupFailure] = []
    stopped = False
    reporter.start(TASK, len(by_hour))
    try:
        for hour, groups in by_hour.items():
            if should_stop is not None and should_stop():
                stopped = True
                log.info(
                    "stop requested: %s hours left for the next run", len(by_hour) - len(commits)
                )
                break
            label = hour_label(hour)
            try:
                done = _optimize_hour(table, settings, conn, groups, plan.options.target_file_size)
            except (TrinoQueryError, LakehouseError) as exc:
                text = str(exc)
                raced = any(m.lower() in text.lower() for m in _CONFLICT_MARKERS)
                log.log(logging.INFO if raced else logging.ERROR, "hour %s: %s", label, text)
                target = skipped if raced else failures
                target.extend(_failure(g, type(exc).__name__, text, raced) for g in groups)
                reporter.advance(TASK, 1, f"{label} {'skipped' if raced else 'failed'}")
                continue
            if done.snapshot_id is None:
                reason = (
                    "Trino's optimize committed nothing: it leaves an hour holding a single "
                    "data file as it is (even unsorted), and rewrites no file larger than the "
                    "threshold"
                )
                skipped.extend(_failure(g, "NotRewritten", reason, False) for g in groups)
                reporter.advance(TASK, 1, f"{label} not rewritten")
                continue
            commits.append(done)
            log.info(
                "hour %s: %s files -> %s files (snapshot %s)",
                label,
                done.files_removed,
                done.files_added,
                done.snapshot_id,
            )
            reporter.advance(TASK, 1, label)
    finally:
        reporter.finish(TASK)
        if own:
            conn.close()  # type: ignore[no-untyped-call]
    return CompactionResult(
        groups_planned=len(plan.groups),
        groups_committed=sum(c.groups for c in commits),
        groups_skipped=len(skipped),
        groups_failed=len(failures),
        files_rewritten=sum(c.files_removed for c in commits),
        files_added=sum(c.files_added for c in commits),
        bytes_rewritten=sum(c.bytes_removed for c in commits),
        bytes_added=sum(c.bytes_added for c in commits),
        records_rewritten=sum(c.records_removed for c in commits),
        records_added=sum(c.records_added for c in commits),
        duplicates_removed=0,
        replace_commits=sum(1 for c in commits if c.operation == "replace"),
        overwrite_commits=sum(1 for c in commits if c.operation != "replace"),
        stopped=stopped,
        skipped=tuple(skipped),
        failures=tuple(failures),
    )


def _session(settings: Settings, target_file_size: int) -> dict[str, str]:
    from lakehouse.trino.config import CATALOG_NAME

    return {f"{CATALOG_NAME}.{TARGET_SIZE_PROPERTY}": f"{int(target_file_size)}B"}


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
) -> RunResult:
    """:func:`maintenance.run_maintenance` with Trino doing the work: every job of
    ``options.jobs`` once, in the same order, under the same lease, recorded in the same
    ``lakehouse.maintenance.last-run`` property (with ``"engine": "trino"``).

    The compaction plan is ``plan`` or a fresh :func:`maintenance.plan_compaction`
    (``now`` fixes the clock hot hours are judged by). A job that raises is recorded as a
    :class:`~maintenance.JobFailure` and the next job still runs."""
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
        settings, port, session_properties=_session(settings, options.compaction.target_file_size)
    )
    try:
        for job in options.jobs:
            if stop():
                log.info("stop requested: skipping %s and later jobs", job)
                break
            try:
                table.refresh()
                done[job] = _job(job, table, settings, conn, options, plan, reporter, stop, now)
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
) -> Any:
    if job == "compaction":
        plan = plan or plan_compaction(table, options.compaction, now=now)
        return compact_with_trino(
            plan,
            settings,
            table=table,
            connection=conn,
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
