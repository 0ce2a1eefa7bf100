"""A compaction plan carried out by Trino's ``optimize``.

Each planned hour partition becomes

    ALTER TABLE <t> EXECUTE optimize(file_size_threshold => '<bytes>B')
    WHERE client_ts >= TIMESTAMP '<hour start>' AND client_ts < TIMESTAMP '<hour end>'

(``hours_per_statement`` > 1 covers that many contiguous planned hours per statement:
fewer, larger statements, which Trino runs with more parallelism). The threshold is
above every planned file of the hours, so Trino rewrites them all; the session property
``target_max_file_size`` is the plan's target file size.

What Trino does differently from the Python compaction, all visible in the result:

* counts come from the snapshot each statement committed (found by Trino's query id in
  its summary): files, bytes and records removed and added;
* Trino does not deduplicate: ``duplicates_removed`` is 0;
* Trino leaves a partition holding a single data file as it is (even unsorted): hours
  planned with one file are reported in ``skipped`` (``NotRewritten``), not sent;
* one statement rewrites whole hours, so an hour the planner split into several groups
  is one commit (every group of it counts as committed);
* Trino sorts what it writes by the table's sort order ``(client_ts, event_id)`` but
  records sort order id 0 in the manifests, and its snapshots carry no ``lakehouse.kind``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lakehouse.engines.trino.client import connect, query
from lakehouse.engines.trino.endpoint import CATALOG_NAME
from lakehouse.engines.trino.errors import TrinoQueryError
from lakehouse.engines.trino.sql import size_literal, table_ref, timestamp_literal
from lakehouse.errors import LakehouseError, UsageError
from lakehouse.settings import Settings
from maintenance.inventory import hour_label, hour_start
from maintenance.plan import CompactionPlan, RewriteGroup
from maintenance.progress import NullReporter, ProgressReporter
from maintenance.results import CompactionResult, GroupFailure

if TYPE_CHECKING:
    from pyiceberg.table import Table
    from trino.dbapi import Connection

log = logging.getLogger(__name__)

TASK = "compaction (trino)"
TARGET_SIZE_PROPERTY = "target_max_file_size"  # Trino Iceberg session property
_CONFLICT_MARKERS = ("conflict", "commitfailed", "validationexception", "concurrent")
NOT_REWRITTEN = (
    "Trino's optimize leaves a partition holding a single data file as it is (even "
    "unsorted); the Python compaction rewrites it"
)


@dataclass(frozen=True)
class Statement:
    """One ``optimize`` over contiguous planned hours ``[first, last]``."""

    first: int
    last: int
    groups: tuple[RewriteGroup, ...]

    @property
    def label(self) -> str:
        first = hour_label(self.first)
        return first if self.first == self.last else f"{first}..{hour_label(self.last)}"


@dataclass(frozen=True)
class Committed:
    """What one statement committed (from its snapshot's summary)."""

    statement: Statement
    snapshot_id: int
    operation: str
    files_removed: int = 0
    files_added: int = 0
    bytes_removed: int = 0
    bytes_added: int = 0
    records_removed: int = 0
    records_added: int = 0


def statements(
    plan: CompactionPlan, hours_per_statement: int = 1
) -> tuple[list[Statement], list[RewriteGroup]]:
    """The plan's hours as statements, and the groups Trino would leave as they are
    (hours planned with a single file)."""
    if hours_per_statement < 1:
        raise UsageError("hours_per_statement must be at least 1")
    by_hour: dict[int, list[RewriteGroup]] = {}
    for group in plan.groups:
        by_hour.setdefault(group.hour, []).append(group)
    lone = [g for gs in by_hour.values() if sum(len(g.files) for g in gs) == 1 for g in gs]
    out: list[Statement] = []
    for hour in sorted(h for h, gs in by_hour.items() if sum(len(g.files) for g in gs) > 1):
        last = out[-1] if out else None
        if last and hour == last.last + 1 and hour - last.first < hours_per_statement:
            out[-1] = Statement(last.first, hour, (*last.groups, *by_hour[hour]))
        else:
            out.append(Statement(hour, hour, tuple(by_hour[hour])))
    return out, lone


def optimize_sql(table_sql: str, statement: Statement, threshold: int) -> str:
    """The statement's SQL. Trino takes no ``?`` parameters in ``ALTER TABLE ... EXECUTE``
    ("expected 0 parameters"): the literals are rendered from typed values."""
    return (
        f"ALTER TABLE {table_sql} EXECUTE optimize(file_size_threshold => "
        f"{size_literal(threshold)})\n"
        f"WHERE client_ts >= {timestamp_literal(hour_start(statement.first))} "
        f"AND client_ts < {timestamp_literal(hour_start(statement.last + 1))}"
    )


def threshold_for(groups: tuple[RewriteGroup, ...] | list[RewriteGroup], target: int) -> int:
    """A ``file_size_threshold`` above every planned file (Trino rewrites the files
    smaller than it), and at least the target size."""
    largest = max((f.size for g in groups for f in g.files), default=0)
    return max(target, largest + 1)


def find_commit(table: Table, query_id: str | None) -> tuple[int, str, dict[str, str]] | None:
    """The snapshot Trino committed for ``query_id`` (its summary names the query)."""
    if not query_id:
        return None
    table.refresh()
    for snapshot in reversed(table.metadata.snapshots):
        summary = snapshot.summary
        if summary is not None and summary.get("trino_query_id") == query_id:
            return (
                snapshot.snapshot_id,
                summary.operation.value,
                dict(summary.additional_properties),
            )
    return None


def _run(
    table: Table, settings: Settings, conn: Connection, statement: Statement, target: int
) -> Committed | None:
    sql = optimize_sql(table_ref(settings), statement, threshold_for(statement.groups, target))
    found = find_commit(table, query(sql, connection=conn).query_id)
    if found is None:
        return None
    snapshot_id, operation, summary = found

    def n(key: str) -> int:
        return int(summary.get(key, 0) or 0)

    return Committed(
        statement,
        snapshot_id,
        operation,
        files_removed=n("deleted-data-files"),
        files_added=n("added-data-files"),
        bytes_removed=n("removed-files-size"),
        bytes_added=n("added-files-size"),
        records_removed=n("deleted-records"),
        records_added=n("added-records"),
    )


def _failure(group: RewriteGroup, error_type: str, message: str, retryable: bool) -> GroupFailure:
    return GroupFailure(group.group_id, hour_label(group.hour), error_type, message, retryable)


def session_properties(target_file_size: int) -> dict[str, str]:
    return {f"{CATALOG_NAME}.{TARGET_SIZE_PROPERTY}": f"{int(target_file_size)}B"}


def compact_with_trino(
    plan: CompactionPlan,
    settings: Settings,
    *,
    port: int | None = None,
    table: Table | None = None,
    connection: Connection | None = None,
    hours_per_statement: int = 1,
    dry_run: bool = False,
    reporter: ProgressReporter | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> CompactionResult:
    """Carry out ``plan`` with Trino's ``optimize`` (see the module docstring).

    A failed statement is reported for each of its groups (when Trino lost a commit race,
    as retryable, in ``skipped``; otherwise in ``failures``) and the next still runs;
    ``should_stop`` is asked between statements. ``table`` (default: the settings'
    events table) is read for the counts; ``connection`` should carry
    :func:`session_properties` (one is opened on ``port`` otherwise)."""
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
    todo, lone = statements(plan, hours_per_statement)
    target = plan.options.target_file_size
    skipped = [_failure(g, "NotRewritten", NOT_REWRITTEN, False) for g in lone]
    failures: list[GroupFailure] = []
    commits: list[Committed] = []
    stopped = False
    own = connection is None
    conn = connection or connect(settings, port, session_properties=session_properties(target))
    reporter.start(TASK, len(todo))
    try:
        for index, statement in enumerate(todo):
            if should_stop is not None and should_stop():
                stopped = True
                log.info("stop requested: %s statements left for the next run", len(todo) - index)
                break
            try:
                done = _run(table, settings, conn, statement, target)
            except (TrinoQueryError, LakehouseError) as exc:
                text = str(exc)
                raced = any(m in text.lower() for m in _CONFLICT_MARKERS)
                log.log(logging.INFO if raced else logging.ERROR, "%s: %s", statement.label, text)
                found = skipped if raced else failures
                found.extend(_failure(g, type(exc).__name__, text, raced) for g in statement.groups)
                reporter.advance(TASK, 1, f"{statement.label} {'skipped' if raced else 'failed'}")
                continue
            if done is None:  # nothing left to rewrite (e.g. changed since planning)
                skipped.extend(
                    _failure(g, "NotRewritten", "Trino's optimize committed nothing", True)
                    for g in statement.groups
                )
            else:
                commits.append(done)
                log.info(
                    "%s: %s files -> %s files (snapshot %s)",
                    statement.label,
                    done.files_removed,
                    done.files_added,
                    done.snapshot_id,
                )
            reporter.advance(TASK, 1, statement.label)
    finally:
        reporter.finish(TASK)
        if own:
            conn.close()  # type: ignore[no-untyped-call]
    return CompactionResult(
        groups_planned=len(plan.groups),
        groups_committed=sum(len(c.statement.groups) for c in commits),
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
