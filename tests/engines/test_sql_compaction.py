"""The compaction loop the SQL engines share, driven by a scripted engine over a stand-in
table whose snapshots the script appends: what is counted, skipped, failed, and when it
stops. (Both engines run it against real Iceberg tables in tests/aws and tests/trino.)"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from lakehouse.engines.sql_compaction import SqlCompaction, SqlStatement, run_statements
from lakehouse.errors import ComponentError, RetryableError
from maintenance.inventory import hour_label
from maintenance.plan import CompactionOptions, CompactionPlan, RewriteGroup

T0 = datetime(2026, 3, 1, 8, tzinfo=UTC)
HOUR0 = int(T0.timestamp()) // 3600


@dataclass
class _Op:
    value: str


@dataclass
class _Summary:
    operation: _Op
    values: dict[str, str]

    def get(self, key: str) -> str | None:
        return self.values.get(key)


@dataclass
class _Snapshot:
    snapshot_id: int
    summary: _Summary


@dataclass
class _Metadata:
    snapshots: list[_Snapshot] = field(default_factory=list)


@dataclass
class _Table:
    metadata: _Metadata = field(default_factory=_Metadata)
    refreshes: int = 0

    def refresh(self) -> None:
        self.refreshes += 1


def _commit(table: _Table, op: str, query: str, files: int, records: int) -> None:
    values = {
        "deleted-data-files": str(files),
        "added-data-files": "1",
        "removed-files-size": str(files * 100),
        "added-files-size": "90",
        "deleted-records": str(records),
        "added-records": str(records),
        "query": query,
    }
    table.metadata.snapshots.append(
        _Snapshot(len(table.metadata.snapshots) + 1, _Summary(_Op(op), values))
    )


def _group(offset: int, part: int = 1, parts: int = 1) -> RewriteGroup:
    hour = HOUR0 + offset
    return RewriteGroup(f"{hour_label(hour)}#{part}", hour, part, parts, ("small-files",), ())


def _plan(groups: tuple[RewriteGroup, ...]) -> CompactionPlan:
    return CompactionPlan(
        table="analytics.events",
        snapshot_id=1,
        planned_at=T0,
        options=CompactionOptions(),
        groups=groups,
        hours_total=len({g.hour for g in groups}),
        hours_hot=0,
        hours_clean=0,
    )


def test_counts_come_from_the_statement_s_own_commits_and_failures_do_not_stop_the_run() -> None:
    table = _Table()
    _commit(table, "append", "writer", 0, 0)  # before the run: never counted
    g0a, g0b, g1, g2, g3, g4 = _group(0, 1, 2), _group(0, 2, 2), *map(_group, (1, 2, 3, 4))
    script: dict[str, Any] = {
        "s0": ("replace", 3, 30),  # two groups, one commit
        "s1": ComponentError("Trino: boom"),
        "s2": RetryableError("commit conflict with a writer"),
        "s3": None,  # ran, committed nothing
        "s4": ("overwrite", 2, 20),
    }
    sent: list[str] = []

    def run(sql: str) -> str:
        sent.append(sql)
        outcome = script[sql]
        if isinstance(outcome, Exception):
            raise outcome
        _commit(table, "append", "other-writer", 0, 5)  # a concurrent append: not ours
        if outcome is not None:
            _commit(table, outcome[0], sql, outcome[1], outcome[2])
        return sql

    engine = SqlCompaction(
        engine="test",
        task="compaction (test)",
        run=run,
        committed=lambda snap, query_id: snap.summary.get("query") == query_id,
        nothing_type="NotRewritten",
        nothing_message=lambda label: f"nothing for {label}",
        nothing_retryable=True,
        raced=lambda exc: "conflict" in str(exc),
    )
    statements = [
        SqlStatement("h0", (g0a, g0b), "s0"),
        SqlStatement("h1", (g1,), "s1"),
        SqlStatement("h2", (g2,), "s2"),
        SqlStatement("h3", (g3,), "s3"),
        SqlStatement("h4", (g4,), "s4"),
    ]
    result = run_statements(
        table,  # type: ignore[arg-type]
        _plan((g0a, g0b, g1, g2, g3, g4)),
        statements,
        engine,
    )
    assert sent == ["s0", "s1", "s2", "s3", "s4"]
    assert (result.groups_planned, result.groups_committed) == (6, 3)
    assert (result.files_rewritten, result.files_added) == (5, 2)
    assert (result.bytes_rewritten, result.bytes_added) == (500, 180)
    assert result.records_rewritten == result.records_added == 50
    assert (result.replace_commits, result.overwrite_commits) == (1, 1)
    assert result.duplicates_removed == 0 and not result.stopped
    assert [(f.group_id, f.error_type, f.retryable) for f in result.failures] == [
        (g1.group_id, "ComponentError", False)
    ]
    assert [(f.group_id, f.error_type, f.retryable) for f in result.skipped] == [
        (g2.group_id, "RetryableError", True),
        (g3.group_id, "NotRewritten", True),
    ]
    assert result.skipped[1].message == "nothing for h3"
    assert result.failures[0].hour == hour_label(g1.hour)


def test_a_stop_request_is_honoured_between_statements() -> None:
    table = _Table()
    groups = tuple(map(_group, range(3)))
    sent: list[str] = []

    def run(sql: str) -> str:
        sent.append(sql)
        _commit(table, "replace", sql, 2, 4)
        return sql

    engine = SqlCompaction(
        engine="test",
        task="t",
        run=run,
        committed=lambda snap, query_id: snap.summary.get("query") == query_id,
        nothing_type="NotRewritten",
        nothing_message=str,
        nothing_retryable=False,
    )
    statements = [SqlStatement(f"h{i}", (g,), f"s{i}") for i, g in enumerate(groups)]
    result = run_statements(
        table,  # type: ignore[arg-type]
        _plan(groups),
        statements,
        engine,
        should_stop=lambda: len(sent) == 2,
    )
    assert sent == ["s0", "s1"] and result.stopped
    assert (result.groups_committed, result.files_rewritten, result.records_added) == (2, 4, 8)
