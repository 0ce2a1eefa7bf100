"""The faster compaction paths give the same data: files read many at once come back
whole and in order, and rewriting several groups at once (overlapping reads, sorts and
writes) leaves the same sorted, deduplicated rows as one group at a time.

Oracles are pyarrow reads of the files themselves and the rows the test appended."""

from __future__ import annotations

import functools
import importlib
import random
import threading
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyarrow.fs import LocalFileSystem
from pyiceberg.io import FileIO
from pyiceberg.table import Table
from pyiceberg.table.metadata import TableMetadata

import maintenance.parquet as parquet_module
from maintenance import CompactionOptions, compact, plan_compaction
from maintenance.paths import canonical
from maintenance.pipeline import RewritePipeline
from maintenance.plan import RewriteGroup
from maintenance.rewrite import RewrittenGroup
from tests.maintenance.builders import ARROW_SCHEMA, COLUMNS, Fed, multiset

# the module, not the function of the same name that the package exports
compact_module = importlib.import_module("maintenance.compact")


def _small_files(tmp_path: Path, rng: random.Random, n: int) -> list[tuple[str, pa.Table]]:
    """``n`` Parquet files of varied sizes; every third one lacks the ``properties``
    column (a file written before that column existed)."""
    out = []
    for i in range(n):
        rows = rng.randrange(1, 400)
        table = pa.table(
            {
                "event_id": [f"f{i}-{j}" for j in range(rows)],
                "user_id": [f"u{rng.randrange(9)}" for _ in range(rows)],
                "properties": [f'{{"i": {j}}}' for j in range(rows)],
            }
        )
        if i % 3 == 0:
            table = table.drop_columns(["properties"])
        path = str(tmp_path / f"part-{i:03d}.parquet")
        pq.write_table(table, path)
        out.append((path, table))
    return out


@pytest.mark.parametrize("threads", [1, 4])
def test_files_read_at_once_come_back_whole_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, threads: int
) -> None:
    monkeypatch.setattr(parquet_module, "READ_THREADS", threads)
    files = _small_files(tmp_path, random.Random(3), 23)
    schema = pa.schema(
        [
            ("event_id", pa.large_string()),
            ("user_id", pa.large_string()),
            ("properties", pa.large_string()),
        ]
    )
    read = parquet_module.read_parquet_files(LocalFileSystem(), [p for p, _ in files], schema)
    assert len(read) == len(files)
    for (path, written), got in zip(files, read, strict=True):
        assert got.schema == schema, path
        assert got.num_rows == written.num_rows
        assert got.column("event_id").to_pylist() == written.column("event_id").to_pylist()
        if "properties" in written.column_names:
            assert got.column("properties").to_pylist() == written.column("properties").to_pylist()
        else:  # a column the file lacks reads as nulls
            assert got.column("properties").null_count == written.num_rows


@pytest.mark.parametrize(("depth", "threads"), [(1, 1), (3, 4)])
@pytest.mark.parametrize("max_group_bytes", [None, 12_000])
def test_overlapping_groups_leave_the_same_rows(
    sqlite_fed: tuple[Table, Fed],
    monkeypatch: pytest.MonkeyPatch,
    depth: int,
    threads: int,
    max_group_bytes: int | None,
) -> None:
    """One group at a time with one read thread, or three groups in flight with four
    read threads; whole hours, or hours split into several groups (deduplicated across
    groups): the same rows, each file sorted by (client_ts, event_id)."""
    table, fed = sqlite_fed
    monkeypatch.setattr(parquet_module, "READ_THREADS", threads)
    monkeypatch.setattr(
        compact_module, "RewritePipeline", functools.partial(RewritePipeline, depth=depth)
    )
    options = (
        CompactionOptions()
        if max_group_bytes is None
        else CompactionOptions(max_group_bytes=max_group_bytes)
    )
    plan = plan_compaction(table, options)
    assert len(plan.groups) >= len(fed.hours)
    result = compact(table, plan=plan)
    assert result.groups_failed == 0 and result.groups_committed == len(plan.groups)
    table.refresh()
    rows: list[dict[str, object]] = []
    for task in table.scan().plan_files():
        written = pq.read_table(canonical(task.file.file_path)).select(COLUMNS).cast(ARROW_SCHEMA)
        file_rows = written.to_pylist()
        keys = [(r["client_ts"], r["event_id"]) for r in file_rows]
        assert keys == sorted(keys), task.file.file_path
        rows += file_rows
    assert multiset(rows) == multiset(fed.expected())
    assert result.duplicates_removed == fed.duplicates


def test_groups_rewritten_after_a_failed_commit_are_removed(
    sqlite_fed: tuple[Table, Fed], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Commits run beside the rewrites: when one raises, the groups rewritten meanwhile
    are never committed, and their files are removed (not left as orphans)."""
    table, fed = sqlite_fed
    before = table.current_snapshot()
    assert before is not None
    plan = plan_compaction(table, CompactionOptions(max_commits=len(fed.hours)))
    batches = plan.batches()
    assert len(batches) == 3 and all(len(b) == 1 for b in batches)
    written: dict[str, list[str]] = {}
    rewrite: Callable[..., RewrittenGroup] = compact_module.rewrite_group

    def recording(
        metadata: TableMetadata, io: FileIO, group: RewriteGroup, **kwargs: Any
    ) -> RewrittenGroup:
        output = rewrite(metadata, io, group, **kwargs)
        written[group.group_id] = [canonical(f.file_path) for f in output.data_files]
        return output

    def broken(*_: object) -> None:
        raise RuntimeError("catalog gone")

    monkeypatch.setattr(compact_module, "rewrite_group", recording)
    monkeypatch.setattr(compact_module.ConflictChecker, "check", broken)
    with pytest.raises(RuntimeError, match="catalog gone"):
        compact(table, plan=plan)
    table.refresh()
    assert table.current_snapshot() == before  # nothing committed
    first = batches[0][0].group_id
    later = [path for gid, paths in written.items() if gid != first for path in paths]
    assert later  # the loop did rewrite another group while the first batch committed
    assert not [p for p in later if Path(p).exists()]


def test_a_group_starts_as_soon_as_any_running_one_ends() -> None:
    """Two at a time: while the oldest group is still being rewritten, the next ones
    start as their predecessors end; never more than two run; results come in order."""
    started = {i: threading.Event() for i in range(5)}
    lock = threading.Lock()
    running = [0]
    most = [0]
    waited_for_third: list[bool] = []

    def rewrite(group: SimpleNamespace) -> int:
        started[group.n].set()
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        try:
            if group.n == 0:  # slow: ends only once group 2 has started beside it
                waited_for_third.append(started[2].wait(timeout=10))
            return int(group.n) * 10
        finally:
            with lock:
                running[0] -= 1

    groups = [SimpleNamespace(n=i, group_id=f"g{i}") for i in range(5)]
    pipeline = RewritePipeline(groups, rewrite, depth=2)  # type: ignore[arg-type]
    out = [(done.group.group_id, done.output) for done in pipeline]
    assert out == [(f"g{i}", i * 10) for i in range(5)]
    assert waited_for_third == [True]
    assert most[0] <= 2
