"""Compaction reads a group's files as one Arrow dataset; what it reads equals what
pyiceberg's own scan reads, file by file, also after the schema evolved."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pyarrow as pa
import pytest
from pyiceberg.expressions import AlwaysTrue
from pyiceberg.io.pyarrow import ArrowScan
from pyiceberg.table import FileScanTask, Table
from pyiceberg.types import StringType

from maintenance import take_inventory
from maintenance.checks import read_files, schema_history_is_stable
from maintenance.inventory import DataFileInfo
from tests.maintenance.builders import append, make_rows, sort_rows


def _files_and_scan(table: Table) -> tuple[list[DataFileInfo], pa.Table]:
    """The live files, and the oracle: pyiceberg's own scan of each, in the same order."""
    table.refresh()
    infos = [f for h in take_inventory(table).hours for f in h.files]
    scan = ArrowScan(table.metadata, table.io, table.schema(), AlwaysTrue())
    parts = [scan.to_table([FileScanTask(info.data_file)]) for info in infos]
    return infos, pa.concat_tables(parts)


@pytest.mark.parametrize("change", ["none", "add", "rename"])
def test_group_read_equals_pyiceberg_scan(sqlite_events: Table, change: str) -> None:
    table = sqlite_events
    rng = random.Random(4)
    hour = datetime(2024, 5, 1, 3, tzinfo=UTC)
    for b in range(4):
        append(table, sort_rows(make_rows(rng, 25, hour, f"b{b}")))
    if change == "add":
        with table.update_schema() as update:
            update.add_column("extra", StringType())
    elif change == "rename":
        with table.update_schema() as update:
            update.rename_column("properties", "props")
    table.refresh()
    assert schema_history_is_stable(table.metadata) is (change != "rename")
    infos, expected = _files_and_scan(table)
    rows, counts = read_files(table.metadata, table.io, infos)
    assert counts == [f.records for f in infos] and sum(counts) == 100
    assert rows.schema.names == expected.schema.names
    assert rows.cast(expected.schema).equals(expected)
    if change == "add":
        assert rows.column("extra").null_count == 100
    if change == "rename":
        assert rows.column("props").null_count < 100  # read under its new name
