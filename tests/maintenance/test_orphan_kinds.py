"""Orphan removal, file by file: every Iceberg file kind is judged and nothing else, the
statistics files the metadata lists are kept, the window's edge is exact, and the
result's counts are those of the files planted (sizes and names written by hand)."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pyiceberg.table import Table
from pyiceberg.table.statistics import PartitionStatisticsFile, StatisticsFile
from pyiceberg.table.update import SetPartitionStatisticsUpdate

from lakehouse.errors import UsageError
from maintenance import remove_orphan_files
from maintenance.orphans import check_orphan_retention
from maintenance.paths import canonical
from tests.maintenance.builders import append, hour_start, make_rows
from tests.support.reachable import files_under, reachable

T0 = 1_700_000_000  # a whole second: planted files get exactly this mtime (or older)


def _plant(table: Table, relative: str, size: int, mtime: float = T0) -> Path:
    path = Path(canonical(table.location())) / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    os.utime(path, (mtime, mtime))
    return path


def _uri(path: Path) -> str:
    return f"file://{path}"


@pytest.fixture
def small(sqlite_events: Table) -> Table:
    """The events table after two small appends (two snapshots, a metadata log)."""
    import random

    rng = random.Random(7)
    append(sqlite_events, make_rows(rng, 5, hour_start(1), "a"))
    append(sqlite_events, make_rows(rng, 5, hour_start(2), "b"))
    return sqlite_events


def test_every_iceberg_kind_is_judged_and_other_files_are_left(small: Table) -> None:
    table = small
    referenced_before = reachable(table.metadata_location).all
    iceberg = {
        "data/a.parquet": 11,
        "data/b.orc": 12,
        "metadata/c.avro": 13,
        "metadata/99999-d.metadata.json": 14,
        "metadata/99998-e.metadata.json.gz": 15,
        "metadata/f.puffin": 16,
        "metadata/g.stats": 17,
    }
    other = ["data/h.json", "data/i.crc", "metadata/j.txt", "data/k.parquet.tmp", "l.gz"]
    planted = {_plant(table, name, size): size for name, size in iceberg.items()}
    others = [_plant(table, name, 3) for name in other]
    later = datetime.fromtimestamp(T0, UTC) + timedelta(days=4)
    dry = remove_orphan_files(table, now=later, dry_run=True)
    assert dry.orphan_paths == tuple(sorted(_uri(p) for p in planted))
    assert dry.orphans_found == len(iceberg) and dry.orphans_too_recent == 0
    assert dry.bytes_found == 11 + 12 + 13 + 14 + 15 + 16 + 17
    assert dry.orphans_deleted == 0 and dry.delete_failures == 0 and dry.dry_run is True
    # Scanned: the Iceberg files on disk, which are the referenced ones and the planted.
    assert dry.files_scanned == len(referenced_before) + len(iceberg)
    assert all(p.exists() for p in [*planted, *others])
    result = remove_orphan_files(table, now=later)
    assert result.orphans_deleted == len(iceberg) and result.delete_failures == 0
    assert result.dry_run is False
    assert not any(p.exists() for p in planted) and all(p.exists() for p in others)
    assert referenced_before <= files_under(table.location())


def test_the_window_edge_keeps_a_file_exactly_as_old_as_the_window(small: Table) -> None:
    table = small
    orphan = _plant(table, "data/edge.parquet", 5)
    mtime = datetime.fromtimestamp(T0, UTC)
    window = timedelta(days=3)
    at_edge = remove_orphan_files(table, older_than=window, now=mtime + window, dry_run=True)
    assert at_edge.orphans_found == 0 and at_edge.orphans_too_recent == 1
    past = mtime + window + timedelta(microseconds=1)
    assert remove_orphan_files(table, older_than=window, now=past, dry_run=True).orphan_paths == (
        _uri(orphan),
    )


def test_a_window_of_exactly_24_hours_needs_no_force(small: Table) -> None:
    table = small
    orphan = _plant(table, "data/day.parquet", 5)
    now = datetime.fromtimestamp(T0, UTC) + timedelta(hours=25)
    result = remove_orphan_files(table, older_than=timedelta(hours=24), now=now)
    assert result.orphan_paths == (_uri(orphan),) and not orphan.exists()


def test_a_failed_delete_is_counted_and_the_others_go(small: Table) -> None:
    table = small
    stuck = _plant(table, "data/stuck.parquet", 4)
    loose = [_plant(table, f"data/loose-{i}.parquet", 4) for i in range(3)]
    tried: list[str] = []

    def delete(location: str) -> None:
        tried.append(location)
        if location.endswith("stuck.parquet"):
            raise PermissionError("denied")
        os.remove(location.removeprefix("file://"))

    later = datetime.fromtimestamp(T0, UTC) + timedelta(days=4)
    result = remove_orphan_files(table, now=later, delete=delete)
    assert sorted(tried) == sorted(_uri(p) for p in [stuck, *loose])
    assert (result.orphans_found, result.orphans_deleted, result.delete_failures) == (4, 3, 1)
    assert stuck.exists() and not any(p.exists() for p in loose)


def test_statistics_files_the_metadata_lists_are_kept(small: Table) -> None:
    table = small
    snapshot_id = table.metadata.snapshots[-1].snapshot_id
    stats = _plant(table, "metadata/table-stats.puffin", 20)
    partition_stats = _plant(table, "metadata/partition-stats.parquet", 21)
    lost = _plant(table, "metadata/lost-stats.puffin", 22)
    with table.update_statistics() as update:
        update.set_statistics(
            StatisticsFile(
                snapshot_id=snapshot_id,
                statistics_path=_uri(stats),
                file_size_in_bytes=20,
                file_footer_size_in_bytes=4,
                blob_metadata=[],
            )
        )
    table.catalog.commit_table(
        table,
        (),
        (
            SetPartitionStatisticsUpdate(
                partition_statistics=PartitionStatisticsFile(
                    snapshot_id=snapshot_id,
                    statistics_path=_uri(partition_stats),
                    file_size_in_bytes=21,
                )
            ),
        ),
    )
    table.refresh()
    assert len(table.metadata.statistics) == len(table.metadata.partition_statistics) == 1
    later = datetime.fromtimestamp(T0, UTC) + timedelta(days=4)
    assert remove_orphan_files(table, now=later, dry_run=True).orphan_paths == (_uri(lost),)


def test_the_old_metadata_files_the_log_lists_are_kept(small: Table) -> None:
    table = small
    logged = [e.metadata_file for e in table.metadata.metadata_log]
    assert len(logged) >= 2
    later = datetime.now(UTC) + timedelta(days=4)
    assert remove_orphan_files(table, now=later, dry_run=True).orphans_found == 0
    assert all(Path(p.removeprefix("file://")).exists() for p in logged)


def test_the_run_is_logged_with_its_counts(small: Table, caplog: pytest.LogCaptureFixture) -> None:
    table = small
    for i in range(2):
        _plant(table, f"data/old-{i}.parquet", 4)
    _plant(table, "data/young.parquet", 4, mtime=datetime.now(UTC).timestamp())
    scanned = len(reachable(table.metadata_location).all) + 3
    with caplog.at_level(logging.INFO, logger="maintenance.orphans"):
        remove_orphan_files(table, now=datetime.now(UTC) + timedelta(hours=1))
    assert [r.getMessage() for r in caplog.records if r.name == "maintenance.orphans"] == [
        f"orphans: {scanned} files scanned, 3 unreferenced, 2 older than the window, 2 deleted"
    ]


def test_a_short_window_is_refused_with_the_whole_reason() -> None:
    with pytest.raises(UsageError) as caught:
        check_orphan_retention(timedelta(hours=4))  # force is off unless asked for
    assert str(caught.value) == (
        "orphan retention 4h is under 1d: files of a commit still in flight look like "
        "orphans and would be deleted, leaving the table pointing at missing files. Use a "
        "window of 24h or more, or pass --force (force=True) when no writer or maintenance "
        "run can be active on the table"
    )
    check_orphan_retention(timedelta(hours=4), force=True)
    check_orphan_retention(timedelta(hours=24))
