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
  its summary): files, bytes and records removed and added (the loop is the one every
  SQL engine shares, :mod:`lakehouse.engines.sql_compaction`);
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
from typing import TYPE_CHECKING, Any

from lakehouse.engines.sql_compaction import (
    SqlCompaction,
    SqlStatement,
    dry_run_result,
    failure,
    run_statements,
)
from lakehouse.engines.trino.client import connect, query
from lakehouse.engines.trino.endpoint import CATALOG_NAME
from lakehouse.engines.trino.sql import size_literal, table_ref, timestamp_literal
from lakehouse.errors import LakehouseError, UsageError
from lakehouse.settings import Settings
from maintenance.inventory import hour_label, hour_start
from maintenance.plan import CompactionPlan, RewriteGroup
from maintenance.progress import ProgressReporter
from maintenance.results import CompactionResult

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
        return dry_run_result(plan)
    from lakehouse.tables import open_events_table

    table = table or open_events_table(settings)
    todo, lone = statements(plan, hours_per_statement)
    target = plan.options.target_file_size
    skipped = [failure(g, "NotRewritten", NOT_REWRITTEN, False) for g in lone]
    table_sql = table_ref(settings)
    sql = [
        SqlStatement(s.label, s.groups, optimize_sql(table_sql, s, threshold_for(s.groups, target)))
        for s in todo
    ]
    own = connection is None
    conn = connection or connect(settings, port, session_properties=session_properties(target))

    def run(text: str) -> str | None:
        return query(text, connection=conn).query_id

    engine = SqlCompaction(
        engine="trino",
        task=TASK,
        run=run,
        committed=_committed_by,
        nothing_type="NotRewritten",
        nothing_message=lambda label: "Trino's optimize committed nothing",
        nothing_retryable=True,  # nothing left to rewrite (e.g. changed since planning)
        raced=_raced,
    )
    try:
        return run_statements(
            table,
            plan,
            sql,
            engine,
            skipped=skipped,
            reporter=reporter,
            should_stop=should_stop,
        )
    finally:
        if own:
            conn.close()  # type: ignore[no-untyped-call]


def _committed_by(snapshot: Any, query_id: str | None) -> bool:
    """Trino names its query in the summary of the snapshot it commits."""
    return bool(query_id) and snapshot.summary.get("trino_query_id") == query_id


def _raced(exc: LakehouseError) -> bool:
    """Trino lost a commit race to a concurrent writer (retryable)."""
    return any(m in str(exc).lower() for m in _CONFLICT_MARKERS)
