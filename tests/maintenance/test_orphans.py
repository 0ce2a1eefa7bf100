"""Orphan removal honours its window and never touches referenced files."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pyiceberg.table import Table

from maintenance import compact, remove_orphan_files
from maintenance.paths import canonical
from tests.maintenance.builders import Fed, multiset, table_rows
from tests.maintenance.test_expire import files_on_disk, referenced
from tests.support.reachable import local, missing_files, unreachable_files


def _plant(table: Table, name: str, age: timedelta) -> Path:
    path = Path(canonical(table.location())) / "data" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"PAR1 not really")
    stamp = time.time() - age.total_seconds()
    os.utime(path, (stamp, stamp))
    return path


def test_orphans_outside_the_window_go_and_referenced_files_stay(fed: tuple[Table, Fed]) -> None:
    table, data = fed
    compact(table)  # the rewritten inputs stay referenced by older snapshots: not orphans
    old = _plant(table, "old-orphan.parquet", timedelta(days=4))
    young = _plant(table, "in-flight.parquet", timedelta(hours=1))
    other = _plant(table, "README.txt", timedelta(days=30))  # not an Iceberg file: left alone
    table.refresh()
    refs = referenced(table)
    # Make every referenced file look ancient: age alone must never get one deleted.
    for path in refs:
        if Path(path).exists():
            os.utime(path, (1, 1))
    dry = remove_orphan_files(table, dry_run=True)
    assert dry.orphan_paths == (f"file://{old}",) and dry.orphans_deleted == 0 and old.exists()
    assert dry.orphans_too_recent == 1
    result = remove_orphan_files(table)
    assert result.orphans_deleted == 1 and not old.exists()
    assert young.exists() and other.exists()
    assert refs <= files_on_disk(table)
    assert multiset(table_rows(table)) == multiset(data.expected())
    # A zero window takes the in-flight one too (and still nothing referenced).
    zero = remove_orphan_files(
        table, older_than=timedelta(0), now=datetime.now(UTC) + timedelta(seconds=1), force=True
    )
    assert zero.orphans_deleted == 1 and not young.exists()
    assert refs <= files_on_disk(table)


def test_files_left_by_a_failed_commit_are_found(sqlite_fed: tuple[Table, Fed]) -> None:
    table, _ = sqlite_fed

    def fail(group: object) -> None:
        raise RuntimeError("boom")

    # A commit attempt that never happened: compaction removes its own files at once.
    result = compact(table, before_commit=fail)
    assert result.groups_failed == 3
    later = datetime.now(UTC) + timedelta(days=4)
    assert remove_orphan_files(table, now=later, dry_run=True).orphans_found == 0


def test_orphans_found_equal_the_independent_oracle(sqlite_fed: tuple[Table, Fed]) -> None:
    """What orphan removal would delete is exactly what the metadata, read without
    project code (tests/support/reachable.py), does not reach."""
    table, _ = sqlite_fed
    compact(table)
    table.refresh()
    planted = {
        str(_plant(table, "lost-a.parquet", timedelta(days=5))),
        str(_plant(table, "lost-b.avro", timedelta(days=5))),
    }
    _plant(table, "notes.txt", timedelta(days=5))  # not an Iceberg file
    table.refresh()
    oracle = unreachable_files(table.metadata_location, table.location())
    assert oracle == planted
    later = datetime.now(UTC) + timedelta(days=4)
    dry = remove_orphan_files(table, now=later, dry_run=True)
    assert {local(p) for p in dry.orphan_paths} == oracle
    assert not missing_files(table.metadata_location)
