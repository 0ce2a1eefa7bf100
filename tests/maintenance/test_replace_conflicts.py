"""A rewrite's commit and its conflict check (Iceberg's ``RewriteFiles`` rules), file by
file: appends meanwhile are kept, a concurrent delete of a rewritten file is refused
with its reason, the run's own commits are recognised, a base that left the head's
history is refused, and each snapshot is read once."""

from __future__ import annotations

import random
import uuid
from collections import Counter
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyiceberg.exceptions import ValidationException
from pyiceberg.expressions import EqualTo, GreaterThanOrEqual, LessThan
from pyiceberg.manifest import DataFile
from pyiceberg.table import Table

from lakehouse.datafiles import write_hour_file
from maintenance.errors import RewriteConflictError
from maintenance.replace import ConflictChecker, commit_rewrite
from tests.maintenance.builders import (
    ARROW_SCHEMA,
    BASE,
    append,
    hour_start,
    make_rows,
    multiset,
    sort_rows,
    table_rows,
    to_arrow,
)
from tests.support.reachable import local

EPOCH_HOUR = int(BASE.timestamp()) // 3600


def _files(table: Table) -> dict[int, DataFile]:
    """The live data files by hour ordinal (one per hour here), through pyiceberg's scan."""
    out = {}
    for task in table.scan().plan_files():
        out[int(task.file.partition[0])] = task.file
    return out


def _two_hours(table: Table) -> tuple[int, DataFile, DataFile]:
    rng = random.Random(3)
    append(table, sort_rows(make_rows(rng, 4, hour_start(0), "a")))
    append(table, sort_rows(make_rows(rng, 4, hour_start(1), "b")))
    table.refresh()
    files = _files(table)
    assert sorted(files) == [EPOCH_HOUR, EPOCH_HOUR + 1]
    base = table.metadata.current_snapshot_id
    assert base is not None
    return base, files[EPOCH_HOUR], files[EPOCH_HOUR + 1]


def _copy(table: Table, data_file: DataFile, hour: int) -> DataFile:
    """A new data file holding the same rows (read with pyarrow, not project code)."""
    rows = pq.read_table(local(data_file.file_path)).select([f.name for f in ARROW_SCHEMA])
    batch = pa.Table.from_pylist(sort_rows(rows.to_pylist()), schema=ARROW_SCHEMA)
    return write_hour_file(
        table.metadata, table.io, batch, hour=hour, name=f"{uuid.uuid4()}.parquet"
    )


def _delete_hour_zero(table: Table) -> int:
    table.delete(LessThan("client_ts", hour_start(1).isoformat()))
    table.refresh()
    sid = table.metadata.current_snapshot_id
    assert sid is not None
    return sid


def test_rewrites_commit_over_appends_and_over_the_runs_own_commits(
    sqlite_events: Table,
) -> None:
    table = sqlite_events
    base, zero, one = _two_hours(table)
    rows = multiset(table_rows(table))
    rng = random.Random(4)
    late = make_rows(rng, 3, hour_start(0), "late")
    append(table, late)  # an append into the very hour being rewritten: kept
    checker = ConflictChecker(table.io, base)
    first = commit_rewrite(
        table, [zero], [_copy(table, zero, EPOCH_HOUR)], base_snapshot_id=base, replace=True,
        checker=checker,
    )  # fmt: skip
    assert checker.own == {first.snapshot_id}
    assert first.summary is not None and first.summary.operation.value == "replace"
    # The second group's check walks back over the first (the run's own) to the base.
    second = commit_rewrite(
        table, [one], [_copy(table, one, EPOCH_HOUR + 1)], base_snapshot_id=base,
        replace=False, checker=checker, properties={"note": "second"},
    )  # fmt: skip
    assert checker.own == {first.snapshot_id, second.snapshot_id}
    assert second.summary is not None and second.summary.operation.value == "overwrite"
    assert second.summary["note"] == "second"
    table.refresh()
    assert multiset(table_rows(table)) == rows + multiset(late)
    live = {t.file.file_path for t in table.scan().plan_files()}
    assert zero.file_path not in live and one.file_path not in live


def test_a_concurrent_delete_of_a_rewritten_file_is_refused(sqlite_events: Table) -> None:
    table = sqlite_events
    base, zero, _ = _two_hours(table)
    deleter = _delete_hour_zero(table)
    snapshots = len(table.metadata.snapshots)
    with pytest.raises(RewriteConflictError) as caught:
        commit_rewrite(
            table, [zero], [_copy(table, zero, EPOCH_HOUR)], base_snapshot_id=base, replace=True
        )
    assert str(caught.value) == (
        "rewrite conflicts with a concurrent change: Data files were concurrently deleted by "
        f"snapshot {deleter}: {[zero.file_path]}"
    )
    table.refresh()
    assert len(table.metadata.snapshots) == snapshots  # nothing committed


def test_the_check_skips_appends_and_own_snapshots_and_stops_at_the_base(
    sqlite_events: Table,
) -> None:
    table = sqlite_events
    base, zero, one = _two_hours(table)
    deleter = _delete_hour_zero(table)
    head = table.metadata.current_snapshot_id
    checker = ConflictChecker(table.io, base)
    checker.check(table.metadata, head, [one])  # the delete did not touch hour one
    with pytest.raises(ValidationException, match=f"deleted by snapshot {deleter}"):
        checker.check(table.metadata, head, [zero, one])
    checker.own.add(deleter)
    checker.check(table.metadata, head, [zero])  # one of the run's own: not a conflict
    # A checker whose base is the delete's parent's parent still meets the delete.
    older = ConflictChecker(table.io, table.metadata.snapshots[0].snapshot_id)
    with pytest.raises(ValidationException, match="concurrently deleted"):
        older.check(table.metadata, head, [zero])
    # From the very start (no base): every snapshot counts, and the walk ends cleanly.
    ConflictChecker(table.io, None).check(table.metadata, head, [one])
    ConflictChecker(table.io, None).check(table.metadata, None, [zero])


def test_a_base_that_left_the_heads_history_is_refused(sqlite_events: Table) -> None:
    table = sqlite_events
    _, zero, _ = _two_hours(table)
    head = table.metadata.current_snapshot_id
    with pytest.raises(ValidationException) as caught:
        ConflictChecker(table.io, 12345).check(table.metadata, head, [zero])
    assert str(caught.value) == "Snapshot 12345 is no longer an ancestor of the head"
    with pytest.raises(ValidationException, match="Snapshot 12345 is no longer"):
        ConflictChecker(table.io, 12345).check(table.metadata, None, [zero])


@pytest.fixture
def opened(sqlite_events: Table, monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    counts: Counter[str] = Counter()
    io_class = type(sqlite_events.io)
    real = io_class.new_input

    def counting(self: object, location: str) -> object:
        counts[location] += 1
        return real(self, location)  # type: ignore[arg-type]

    monkeypatch.setattr(io_class, "new_input", counting)
    yield counts


def test_each_snapshot_is_read_once_per_checker(sqlite_events: Table, opened: Counter[str]) -> None:
    table = sqlite_events
    base, _, one = _two_hours(table)
    deleter = _delete_hour_zero(table)
    checker = ConflictChecker(table.io, base)
    opened.clear()
    checker.check(table.metadata, deleter, [one])
    first = sum(opened.values())
    assert first > 0
    checker.check(table.metadata, deleter, [one])
    assert sum(opened.values()) == first  # the second check read nothing
    # An append is not read at all: it cannot delete a file or add a delete file.
    append(table, make_rows(random.Random(5), 2, hour_start(1), "c"))
    table.refresh()
    opened.clear()
    checker.check(table.metadata, table.metadata.current_snapshot_id, [one])
    assert sum(opened.values()) == 0


def test_a_delete_in_a_shared_manifest_is_seen_and_the_kept_file_is_free(
    sqlite_events: Table,
) -> None:
    """One append, one manifest, two files; a delete drops the second file: the
    rewritten manifest still lists the kept file, which is no conflict."""
    table = sqlite_events
    rng = random.Random(21)
    append(table, make_rows(rng, 3, hour_start(0), "a") + make_rows(rng, 3, hour_start(1), "b"))
    table.refresh()
    base = table.metadata.current_snapshot_id
    files = _files(table)
    zero, one = files[EPOCH_HOUR], files[EPOCH_HOUR + 1]
    table.delete(GreaterThanOrEqual("client_ts", hour_start(1).isoformat()))
    table.refresh()
    head = table.metadata.current_snapshot_id
    with pytest.raises(ValidationException, match="concurrently deleted"):
        ConflictChecker(table.io, base).check(table.metadata, head, [one])
    ConflictChecker(table.io, base).check(table.metadata, head, [zero])


def test_a_file_rewritten_meanwhile_in_the_same_hour_is_no_conflict(sqlite_events: Table) -> None:
    """A concurrent delete that rewrote another file of the hour added a data file
    there, not a delete file: the group's own file may still be rewritten."""
    table = sqlite_events
    rng = random.Random(22)
    first = make_rows(rng, 3, hour_start(0), "a")
    append(table, first)
    append(table, make_rows(rng, 3, hour_start(0), "b"))
    table.refresh()
    base = table.metadata.current_snapshot_id
    ours = next(
        t.file for t in table.scan().plan_files() if "b-" in str(pq.read_table(
            local(t.file.file_path)).column("event_id")[0])
    )  # fmt: skip
    table.delete(EqualTo("event_id", str(first[0]["event_id"])))  # rewrites the other file
    table.refresh()
    head = table.metadata.current_snapshot_id
    ConflictChecker(table.io, base).check(table.metadata, head, [ours])


def test_without_a_checker_the_base_must_still_be_an_ancestor(sqlite_events: Table) -> None:
    table = sqlite_events
    first, zero, _ = _two_hours(table)
    table.manage_snapshots().create_branch(first, "side").commit()
    table.append(to_arrow(make_rows(random.Random(23), 2, hour_start(0), "s")), branch="side")
    table.refresh()
    side = table.metadata.refs["side"].snapshot_id
    with pytest.raises(RewriteConflictError, match=f"Snapshot {side} is no longer an ancestor"):
        commit_rewrite(
            table, [zero], [_copy(table, zero, EPOCH_HOUR)], base_snapshot_id=side, replace=True
        )
