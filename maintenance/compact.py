"""Execute a compaction plan: rewrite and commit each group on its own.

One commit per group: a failed group is reported and leaves the others committed. A
group that loses to a concurrent change of its files (another compactor, a delete) is
not committed; its hour is re-planned from the new table state and tried once more.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from pyiceberg.table import Table

from lakehouse import faults
from lakehouse.errors import CommitError, LakehouseError
from lakehouse.schema import SUMMARY_KIND
from maintenance.errors import RewriteConflictError
from maintenance.inventory import (
    KIND_COMPACTION,
    SUMMARY_COMPACTED_HOURS,
    SUMMARY_DUPLICATES_REMOVED,
    SUMMARY_GROUP,
    SUMMARY_RUN,
    hour_label,
)
from maintenance.paths import delete_all, io_delete
from maintenance.plan import CompactionOptions, CompactionPlan, RewriteGroup, plan_compaction
from maintenance.progress import NullReporter, ProgressReporter
from maintenance.replace import ConflictChecker, commit_rewrite
from maintenance.results import CompactionResult, GroupFailure
from maintenance.rewrite import RewrittenGroup, rewrite_group

log = logging.getLogger(__name__)

StopCheck = Callable[[], bool]
GroupHook = Callable[[RewriteGroup], None]
TASK = "compaction"


@dataclass(frozen=True)
class _Committed:
    group: RewriteGroup
    output: RewrittenGroup
    replace: bool


def compact(
    table: Table,
    options: CompactionOptions | None = None,
    *,
    plan: CompactionPlan | None = None,
    dry_run: bool = False,
    reporter: ProgressReporter | None = None,
    should_stop: StopCheck | None = None,
    before_commit: GroupHook | None = None,
    run_id: str | None = None,
    now: datetime | None = None,
) -> CompactionResult:
    """Plan (unless ``plan`` is given) and execute compaction; returns what was done.

    ``should_stop`` is asked before each group (graceful shutdown, a lost lease).
    ``before_commit`` is called after a group's files are written and before its commit
    (instrumentation; tests use it to race commits against the rewrite).
    """
    options = options or (plan.options if plan else CompactionOptions())
    plan = plan or plan_compaction(table, options, now=now)
    if dry_run:
        return CompactionResult(
            groups_planned=len(plan.groups),
            files_rewritten=plan.files,
            bytes_rewritten=plan.bytes,
            records_rewritten=sum(g.records for g in plan.groups),
            dry_run=True,
        )
    reporter = reporter or NullReporter()
    run_id = run_id or uuid.uuid4().hex[:12]
    reporter.start(TASK, len(plan.groups))
    try:
        committed, skipped, failures, stopped = _execute(
            table, plan, reporter, should_stop, before_commit, run_id
        )
        if skipped and not stopped:
            hours = {group.hour for group, _ in skipped}
            log.info("re-planning %s hours after concurrent changes", len(hours))
            table.refresh()
            again = plan_compaction(table, options, now=now, hours=hours)
            reporter.start(f"{TASK} (re-plan)", len(again.groups))
            try:
                more, skipped, more_failures, stopped = _execute(
                    table,
                    again,
                    reporter,
                    should_stop,
                    before_commit,
                    run_id,
                    task=f"{TASK} (re-plan)",
                )
            finally:
                reporter.finish(f"{TASK} (re-plan)")
            committed += more
            failures += more_failures
    finally:
        reporter.finish(TASK)
    return _result(plan, committed, skipped, failures, stopped)


def _execute(
    table: Table,
    plan: CompactionPlan,
    reporter: ProgressReporter,
    should_stop: StopCheck | None,
    before_commit: GroupHook | None,
    run_id: str,
    task: str = TASK,
) -> tuple[list[_Committed], list[tuple[RewriteGroup, GroupFailure]], list[GroupFailure], bool]:
    committed: list[_Committed] = []
    skipped: list[tuple[RewriteGroup, GroupFailure]] = []
    failures: list[GroupFailure] = []
    if plan.metadata is None:
        raise ValueError("a plan without its base metadata cannot be executed")
    checker = ConflictChecker(table.io, plan.snapshot_id)
    for group in plan.groups:
        if should_stop is not None and should_stop():
            log.info(
                "stop requested: %s groups left for the next run", len(plan.groups) - len(committed)
            )
            return committed, skipped, failures, True
        try:
            committed.append(_run_group(table, plan, group, checker, before_commit, run_id))
            reporter.advance(task, 1, group.group_id)
        except RewriteConflictError as exc:
            log.info("group %s lost to a concurrent change: %s", group.group_id, exc)
            skipped.append((group, _failure(group, exc)))
            reporter.advance(task, 1, f"{group.group_id} skipped")
        except Exception as exc:  # reported per group, never swallowed
            log.error(
                "group %s failed: %s: %s", group.group_id, type(exc).__name__, exc, exc_info=True
            )
            failures.append(_failure(group, exc))
            reporter.advance(task, 1, f"{group.group_id} failed")
    return committed, skipped, failures, False


def _run_group(
    table: Table,
    plan: CompactionPlan,
    group: RewriteGroup,
    checker: ConflictChecker,
    before_commit: GroupHook | None,
    run_id: str,
) -> _Committed:
    assert plan.metadata is not None
    options = plan.options
    output = rewrite_group(
        plan.metadata,
        table.io,
        group,
        target_file_size=options.target_file_size,
        deduplicate=options.deduplicate,
    )
    attempted = False
    try:
        if before_commit is not None:
            before_commit(group)
        replace_only = output.duplicates_removed == 0
        faults.point("compact.files-written")
        attempted = True
        table.refresh()
        commit_rewrite(
            table,
            [f.data_file for f in group.files],
            output.data_files,
            base_snapshot_id=plan.snapshot_id,
            replace=replace_only,
            checker=checker,
            properties={
                SUMMARY_KIND: KIND_COMPACTION,
                SUMMARY_COMPACTED_HOURS: hour_label(group.hour),
                SUMMARY_DUPLICATES_REMOVED: str(output.duplicates_removed),
                SUMMARY_GROUP: group.group_id,
                SUMMARY_RUN: run_id,
            },
        )
    except Exception as exc:
        # Not attempted, or surely not landed: the new files are ours alone to remove. On
        # any other error the outcome is unknown; orphan removal (with its window) cleans up.
        if not attempted or isinstance(exc, (RewriteConflictError, CommitError)):
            delete_all([f.file_path for f in output.data_files], io_delete(table.io))
        raise
    faults.point("compact.group-committed")
    log.info(
        "group %s: %s files -> %s files, %s duplicates removed",
        group.group_id,
        len(group.files),
        len(output.data_files),
        output.duplicates_removed,
    )
    return _Committed(group, output, replace_only)


def _failure(group: RewriteGroup, exc: BaseException) -> GroupFailure:
    return GroupFailure(
        group_id=group.group_id,
        hour=hour_label(group.hour),
        error_type=type(exc).__name__,
        message=str(exc),
        retryable=isinstance(exc, LakehouseError) and exc.retryable,
    )


def _result(
    plan: CompactionPlan,
    committed: list[_Committed],
    skipped: list[tuple[RewriteGroup, GroupFailure]],
    failures: list[GroupFailure],
    stopped: bool,
) -> CompactionResult:
    return CompactionResult(
        groups_planned=len(plan.groups),
        groups_committed=len(committed),
        groups_skipped=len(skipped),
        groups_failed=len(failures),
        files_rewritten=sum(len(c.group.files) for c in committed),
        files_added=sum(len(c.output.data_files) for c in committed),
        bytes_rewritten=sum(c.output.bytes_in for c in committed),
        bytes_added=sum(c.output.bytes_out for c in committed),
        records_rewritten=sum(c.output.records_in for c in committed),
        records_added=sum(c.output.records_out for c in committed),
        duplicates_removed=sum(c.output.duplicates_removed for c in committed),
        replace_commits=sum(1 for c in committed if c.replace),
        overwrite_commits=sum(1 for c in committed if not c.replace),
        stopped=stopped,
        skipped=tuple(f for _, f in skipped),
        failures=tuple(failures),
    )
