"""The compaction loop every SQL engine shares: a compaction plan carried out as one
statement per planned hour (or run of hours), each statement's work read back from the
snapshots it committed.

An engine says how it spells and runs a statement (:class:`SqlStatement`, a ``run``
function returning the query id) and how to recognise what a statement committed
(:class:`SqlCompaction`); :func:`run_statements` does the rest, the same for every
engine: a stop request honoured between statements, a failed statement reported for
each of its groups (a lost commit race as retryable, in ``skipped``) while the next still
runs, a statement that committed nothing reported in ``skipped``, and the counts (files,
bytes, records removed and added, ``replace`` and ``overwrite`` commits) taken from the
committed snapshots' summaries. SQL engines do not deduplicate: ``duplicates_removed``
stays 0.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lakehouse.errors import LakehouseError
from maintenance.inventory import hour_label
from maintenance.plan import CompactionPlan, RewriteGroup
from maintenance.progress import NullReporter, ProgressReporter
from maintenance.results import CompactionResult, GroupFailure

if TYPE_CHECKING:
    from pyiceberg.table import Table
    from pyiceberg.table.snapshots import Snapshot

log = logging.getLogger(__name__)

REWRITE_OPERATIONS = frozenset({"replace", "overwrite"})


@dataclass(frozen=True)
class SqlStatement:
    """One statement of the plan: the groups it rewrites, a label for logs and failures
    (the hour, or ``first..last``), and its SQL."""

    label: str
    groups: tuple[RewriteGroup, ...]
    sql: str


def _never(exc: LakehouseError) -> bool:
    return False


@dataclass(frozen=True)
class SqlCompaction:
    """How one engine's compaction statements behave.

    ``run`` sends a statement and returns its query id. ``committed(snapshot, query_id)``
    says whether a snapshot that appeared while the statement ran is its work.
    ``raced(error)`` says whether a failure was a lost commit race (retryable: skipped,
    not failed). A statement that committed nothing is reported as ``nothing_type`` with
    ``nothing_message(label)`` (``nothing_retryable``)."""

    engine: str
    task: str
    run: Callable[[str], str | None]
    committed: Callable[[Snapshot, str | None], bool]
    nothing_type: str
    nothing_message: Callable[[str], str]
    nothing_retryable: bool
    raced: Callable[[LakehouseError], bool] = field(default=_never)


def dry_run_result(plan: CompactionPlan) -> CompactionResult:
    """What carrying out ``plan`` would rewrite (nothing is sent)."""
    return CompactionResult(
        groups_planned=len(plan.groups),
        files_rewritten=plan.files,
        bytes_rewritten=plan.bytes,
        records_rewritten=sum(g.records for g in plan.groups),
        dry_run=True,
    )


def failure(group: RewriteGroup, kind: str, message: str, retryable: bool) -> GroupFailure:
    """``group`` not rewritten: why (``kind``, ``message``) and whether a retry may help."""
    return GroupFailure(group.group_id, hour_label(group.hour), kind, message, retryable)


_COUNTS = {
    "files_rewritten": "deleted-data-files",
    "files_added": "added-data-files",
    "bytes_rewritten": "removed-files-size",
    "bytes_added": "added-files-size",
    "records_rewritten": "deleted-records",
    "records_added": "added-records",
}


def run_statements(
    table: Table,
    plan: CompactionPlan,
    statements: Sequence[SqlStatement],
    engine: SqlCompaction,
    *,
    skipped: Sequence[GroupFailure] = (),
    reporter: ProgressReporter | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> CompactionResult:
    """Run ``statements`` in order and count what they committed (see the module doc).
    ``skipped``: groups the engine already decided not to send."""
    reporter = reporter or NullReporter()
    counts: dict[str, int] = dict.fromkeys((*_COUNTS, "committed", "replace", "overwrite"), 0)
    not_done: list[GroupFailure] = list(skipped)
    failures: list[GroupFailure] = []
    stopped = False
    reporter.start(engine.task, len(statements))
    try:
        for index, item in enumerate(statements):
            if should_stop is not None and should_stop():
                stopped = True
                log.info(
                    "stop requested: %s statements left for the next run", len(statements) - index
                )
                break
            table.refresh()
            before = {s.snapshot_id for s in table.metadata.snapshots}
            try:
                query_id = engine.run(item.sql)
            except LakehouseError as exc:
                raced = engine.raced(exc)
                log.log(
                    logging.INFO if raced else logging.ERROR,
                    "%s optimize of %s failed: %s",
                    engine.engine,
                    item.label,
                    exc,
                )
                found = not_done if raced else failures
                retry = raced or exc.retryable
                found += [failure(g, type(exc).__name__, str(exc), retry) for g in item.groups]
                reporter.advance(engine.task, 1, f"{item.label} {'skipped' if raced else 'failed'}")
                continue
            table.refresh()
            commits = [
                s.summary
                for s in table.metadata.snapshots
                if s.snapshot_id not in before
                and s.summary is not None
                and engine.committed(s, query_id)
            ]
            if not commits:
                message = engine.nothing_message(item.label)
                not_done += [
                    failure(g, engine.nothing_type, message, engine.nothing_retryable)
                    for g in item.groups
                ]
            else:
                counts["committed"] += len(item.groups)
                for summary in commits:
                    _add(counts, summary)
            log.info(
                "%s optimize of %s (%s): %s commits",
                engine.engine,
                item.label,
                query_id,
                len(commits),
            )
            reporter.advance(engine.task, 1, item.label)
    finally:
        reporter.finish(engine.task)
    return CompactionResult(
        groups_planned=len(plan.groups),
        groups_committed=counts["committed"],
        groups_skipped=len(not_done),
        groups_failed=len(failures),
        files_rewritten=counts["files_rewritten"],
        files_added=counts["files_added"],
        bytes_rewritten=counts["bytes_rewritten"],
        bytes_added=counts["bytes_added"],
        records_rewritten=counts["records_rewritten"],
        records_added=counts["records_added"],
        duplicates_removed=0,
        replace_commits=counts["replace"],
        overwrite_commits=counts["overwrite"],
        stopped=stopped,
        skipped=tuple(not_done),
        failures=tuple(failures),
    )


def _add(counts: dict[str, int], summary: Any) -> None:
    counts["replace" if summary.operation.value == "replace" else "overwrite"] += 1
    for name, key in _COUNTS.items():
        counts[name] += int(summary.get(key) or 0)
