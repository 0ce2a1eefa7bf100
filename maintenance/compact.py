"""Execute a compaction plan: rewrite the groups, commit them in few snapshots.

The plan's groups are cut, in order, into at most ``max_commits`` batches
(:meth:`CompactionPlan.batches`, default 10, as Iceberg's ``partial-progress.max-commits``);
each batch is one commit. Groups are rewritten ahead of their commit, a few at a time
(:mod:`maintenance.pipeline`), so reading, sorting and writing overlap; a batch commits
on its own thread while the next groups are rewritten.

Partial progress: a commit made stays made. A group whose rewrite fails is reported
alone; a group whose files a concurrent change touched (another compactor, a delete) is
left out of its batch before the commit; a commit that still loses to a concurrent
change loses only its own groups. Lost groups' hours are re-planned from the new table
state and tried once more; what fails again is reported.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

from pyiceberg.exceptions import ValidationException
from pyiceberg.table import Table

from lakehouse import faults
from lakehouse import summary as summary_names
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
from maintenance.pipeline import RewritePipeline, Rewritten
from maintenance.plan import (
    CompactionOptions,
    CompactionPlan,
    RewriteGroup,
    commit_batches,
    plan_compaction,
)
from maintenance.progress import NullReporter, ProgressReporter
from maintenance.replace import ConflictChecker, commit_rewrite
from maintenance.results import CompactionResult, GroupFailure
from maintenance.rewrite import RewrittenGroup, rewrite_group

log = logging.getLogger(__name__)

StopCheck = Callable[[], bool]
BatchHook = Callable[[tuple[RewriteGroup, ...]], None]
TASK = "compaction"


@dataclass(frozen=True)
class _Committed:
    group: RewriteGroup
    output: RewrittenGroup


@dataclass
class _Outcome:
    """What executing (part of) a plan did."""

    committed: list[_Committed] = field(default_factory=list)
    lost: list[tuple[RewriteGroup, GroupFailure]] = field(default_factory=list)
    failures: list[GroupFailure] = field(default_factory=list)
    replace_commits: int = 0
    overwrite_commits: int = 0
    stopped: bool = False

    @property
    def commits(self) -> int:
        return self.replace_commits + self.overwrite_commits

    def add(self, other: _Outcome) -> None:
        self.committed += other.committed
        self.failures += other.failures
        self.lost = other.lost
        self.replace_commits += other.replace_commits
        self.overwrite_commits += other.overwrite_commits
        self.stopped = other.stopped


def compact(
    table: Table,
    options: CompactionOptions | None = None,
    *,
    plan: CompactionPlan | None = None,
    dry_run: bool = False,
    reporter: ProgressReporter | None = None,
    should_stop: StopCheck | None = None,
    before_commit: BatchHook | None = None,
    run_id: str | None = None,
    now: datetime | None = None,
) -> CompactionResult:
    """Plan (unless ``plan`` is given) and execute compaction; returns what was done.

    ``should_stop`` is asked before each group is started (graceful shutdown, a lost
    lease): the groups already rewritten are committed, the others left for the next
    run. ``before_commit`` is called with a batch's groups after their files are written
    and before their commit (instrumentation; tests use it to race commits against the
    rewrite).
    """
    options = (options or (plan.options if plan else CompactionOptions())).for_table(table)
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
    budget = plan.max_commits
    reporter.start(TASK, len(plan.groups))
    try:
        outcome = _execute(
            table, plan, plan.batches(), reporter, should_stop, before_commit, run_id
        )
        if outcome.lost and not outcome.stopped:
            hours = {group.hour for group, _ in outcome.lost}
            log.info("re-planning %s hours after concurrent changes", len(hours))
            table.refresh()
            again = plan_compaction(table, options, now=now, hours=hours)
            task = f"{TASK} (re-plan)"
            reporter.start(task, len(again.groups))
            try:
                batches = commit_batches(again.groups, max(1, budget - outcome.commits))
                more = _execute(
                    table, again, batches, reporter, should_stop, before_commit, run_id, task
                )
            finally:
                reporter.finish(task)
            outcome.add(more)
    finally:
        reporter.finish(TASK)
    return _result(plan, outcome)


def _execute(
    table: Table,
    plan: CompactionPlan,
    batches: Sequence[tuple[RewriteGroup, ...]],
    reporter: ProgressReporter,
    should_stop: StopCheck | None,
    before_commit: BatchHook | None,
    run_id: str,
    task: str = TASK,
) -> _Outcome:
    metadata = plan.metadata
    if metadata is None:
        raise ValueError("a plan without its base metadata cannot be executed")
    options = plan.options
    checker = ConflictChecker(table.io, plan.snapshot_id)
    outcome = _Outcome()

    def rewrite(group: RewriteGroup) -> RewrittenGroup:
        return rewrite_group(
            metadata,
            table.io,
            group,
            target_file_size=options.target_file_size,
            deduplicate=options.deduplicate,
        )

    pipeline = RewritePipeline(
        (group for batch in batches for group in batch),
        rewrite,
        should_stop=should_stop,
        discard=lambda output: _delete_outputs(table, [output]),
    )
    ends = {batch[-1].group_id for batch in batches}
    ready: list[Rewritten] = []
    # Batches commit one at a time, in order, on their own thread: the loop below keeps
    # handing finished groups over and starting new ones while a commit runs.
    with ThreadPoolExecutor(1, thread_name_prefix="compaction-commit") as committer:
        commit: Future[None] | None = None

        def submit(batch: list[Rewritten]) -> Future[None]:
            if commit is not None:
                commit.result()  # the previous batch first (and its error, if any)
            return committer.submit(
                _commit_batch, table, plan, batch, checker, before_commit, run_id, outcome
            )

        try:
            for done in pipeline:
                if done.error is not None:
                    outcome.failures.append(_failure(done.group, done.error))
                    reporter.advance(task, 1, f"{done.group.group_id} failed")
                else:
                    ready.append(done)
                    reporter.advance(task, 1, done.group.group_id)
                if done.group.group_id in ends and ready:
                    commit = submit(ready)
                    ready = []
            if ready:  # stopped part-way through a batch: commit what was rewritten
                commit = submit(ready)
                ready = []
            if commit is not None:
                commit.result()
        except BaseException:
            # A commit raised: the groups rewritten since, never to be committed, go.
            _delete_outputs(table, [item.output for item in ready if item.output is not None])
            raise
    if pipeline.stopped:
        log.info("stop requested: groups not started are left for the next run")
        outcome.stopped = True
    return outcome


def _commit_batch(
    table: Table,
    plan: CompactionPlan,
    batch: list[Rewritten],
    checker: ConflictChecker,
    before_commit: BatchHook | None,
    run_id: str,
    outcome: _Outcome,
) -> None:
    """Commit one batch of rewritten groups as one snapshot (see the module docstring)."""
    try:
        if before_commit is not None:
            before_commit(tuple(item.group for item in batch))
    except Exception as exc:  # nothing attempted: the new files are ours alone to remove
        log.error("compaction commit hook failed: %s: %s", type(exc).__name__, exc)
        _delete_outputs(table, [item.output for item in batch if item.output is not None])
        outcome.failures += [_failure(item.group, exc) for item in batch]
        return
    faults.point("compact.files-written")
    table.refresh()
    head = table.metadata.current_snapshot_id
    keep: list[tuple[RewriteGroup, RewrittenGroup]] = []
    for item in batch:
        assert item.output is not None
        try:  # a group whose files changed meanwhile is left out: the others still commit
            checker.check(table.metadata, head, [f.data_file for f in item.group.files])
        except ValidationException as exc:
            log.info("group %s lost to a concurrent change: %s", item.group.group_id, exc)
            outcome.lost.append((item.group, _failure(item.group, RewriteConflictError(str(exc)))))
            _delete_outputs(table, [item.output])
            continue
        keep.append((item.group, item.output))
    if not keep:
        return
    groups = tuple(group for group, _ in keep)
    outputs = [output for _, output in keep]
    duplicates = {g.hour: 0 for g in groups}
    for group, output in keep:
        duplicates[group.hour] += output.duplicates_removed
    replace_only = sum(duplicates.values()) == 0
    properties = {
        SUMMARY_KIND: KIND_COMPACTION,
        SUMMARY_COMPACTED_HOURS: ",".join(hour_label(h) for h in sorted(duplicates)),
        SUMMARY_DUPLICATES_REMOVED: str(sum(duplicates.values())),
        SUMMARY_GROUP: ",".join(g.group_id for g in groups),
        SUMMARY_RUN: run_id,
    }
    if not replace_only:
        properties[summary_names.DUPLICATE_HOURS] = ",".join(
            f"{hour_label(h)}:{n}" for h, n in sorted(duplicates.items()) if n
        )
    try:
        commit_rewrite(
            table,
            [f.data_file for group in groups for f in group.files],
            [f for output in outputs for f in output.data_files],
            base_snapshot_id=plan.snapshot_id,
            replace=replace_only,
            checker=checker,
            properties=properties,
        )
    except Exception as exc:
        # Surely not landed: the new files are ours alone to remove. On any other error
        # the outcome is unknown; orphan removal (with its window) cleans up.
        if isinstance(exc, (RewriteConflictError, CommitError)):
            _delete_outputs(table, outputs)
        if isinstance(exc, RewriteConflictError):
            log.info("a commit of %s groups lost to a concurrent change: %s", len(groups), exc)
            outcome.lost += [(g, _failure(g, exc)) for g in groups]
        else:
            log.error(
                "a commit of %s groups failed: %s: %s",
                len(groups),
                type(exc).__name__,
                exc,
                exc_info=not isinstance(exc, LakehouseError),
            )
            outcome.failures += [_failure(g, exc) for g in groups]
        return
    if replace_only:
        outcome.replace_commits += 1
    else:
        outcome.overwrite_commits += 1
    outcome.committed += [_Committed(g, o) for g, o in keep]
    faults.point("compact.group-committed")
    log.info(
        "committed %s groups (%s hours): %s files -> %s files, %s duplicates removed",
        len(groups),
        len(duplicates),
        sum(len(g.files) for g in groups),
        sum(len(o.data_files) for o in outputs),
        sum(duplicates.values()),
    )


def _delete_outputs(table: Table, outputs: Sequence[RewrittenGroup]) -> None:
    delete_all([f.file_path for o in outputs for f in o.data_files], io_delete(table.io))


def _failure(group: RewriteGroup, exc: BaseException) -> GroupFailure:
    return GroupFailure(
        group_id=group.group_id,
        hour=hour_label(group.hour),
        error_type=type(exc).__name__,
        message=str(exc),
        retryable=isinstance(exc, LakehouseError) and exc.retryable,
    )


def _result(plan: CompactionPlan, outcome: _Outcome) -> CompactionResult:
    committed = outcome.committed
    return CompactionResult(
        groups_planned=len(plan.groups),
        groups_committed=len(committed),
        groups_skipped=len(outcome.lost),
        groups_failed=len(outcome.failures),
        files_rewritten=sum(len(c.group.files) for c in committed),
        files_added=sum(len(c.output.data_files) for c in committed),
        bytes_rewritten=sum(c.output.bytes_in for c in committed),
        bytes_added=sum(c.output.bytes_out for c in committed),
        records_rewritten=sum(c.output.records_in for c in committed),
        records_added=sum(c.output.records_out for c in committed),
        duplicates_removed=sum(c.output.duplicates_removed for c in committed),
        commits=outcome.commits,
        replace_commits=outcome.replace_commits,
        overwrite_commits=outcome.overwrite_commits,
        stopped=outcome.stopped,
        skipped=tuple(f for _, f in outcome.lost),
        failures=tuple(outcome.failures),
    )
