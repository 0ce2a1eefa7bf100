"""Data checks the planner runs when metadata cannot answer: is a file sorted by the
table's sort order, does an hour hold duplicate ``event_id``s. Reads only the key columns."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl
import pyarrow as pa
from pyiceberg.expressions import AlwaysTrue
from pyiceberg.io import FileIO
from pyiceberg.io.pyarrow import ArrowScan
from pyiceberg.table import FileScanTask
from pyiceberg.table.metadata import TableMetadata

from lakehouse.schema import SORT_COLUMNS
from maintenance.inventory import DataFileInfo

KEY_COLUMN = "event_id"


def read_file(
    metadata: TableMetadata, io: FileIO, info: DataFileInfo, columns: Sequence[str] | None = None
) -> pa.Table:
    """One data file projected onto the table's current schema (all columns, or ``columns``)."""
    schema = metadata.schema() if columns is None else metadata.schema().select(*columns)
    return ArrowScan(metadata, io, schema, AlwaysTrue()).to_table([FileScanTask(info.data_file)])


def read_files(
    metadata: TableMetadata,
    io: FileIO,
    infos: Sequence[DataFileInfo],
    columns: Sequence[str] | None = None,
) -> tuple[pa.Table, list[int]]:
    """Several files read in parallel, concatenated in order, with each file's row count.

    Counts come from metadata and are checked against what was read; on a mismatch the
    files are read one by one instead."""
    if not infos:
        schema = metadata.schema() if columns is None else metadata.schema().select(*columns)
        return schema.as_arrow().empty_table(), []
    schema = metadata.schema() if columns is None else metadata.schema().select(*columns)
    table = ArrowScan(metadata, io, schema, AlwaysTrue()).to_table(
        [FileScanTask(i.data_file) for i in infos]
    )
    counts = [i.records for i in infos]
    if table.num_rows == sum(counts):
        return table, counts
    parts = [read_file(metadata, io, i, columns) for i in infos]
    return pa.concat_tables(parts, promote_options="permissive"), [p.num_rows for p in parts]


def is_sorted(table: pa.Table, columns: Sequence[str] = SORT_COLUMNS) -> bool:
    """True when rows are in ascending lexicographic order of ``columns``."""
    if table.num_rows < 2:
        return True
    frame = pl.from_arrow(table.select(list(columns)))
    assert isinstance(frame, pl.DataFrame)
    in_order = pl.lit(True)
    # Build "row i <= row i+1" lexicographically, from the last column to the first.
    for name in reversed(columns):
        col = pl.col(name)
        nxt = col.shift(-1)
        in_order = (col < nxt) | ((col == nxt) & in_order)
    ok = frame.select(in_order.head(frame.height - 1).all()).item()
    return bool(ok)


def duplicate_count(tables: Sequence[pa.Table], key: str = KEY_COLUMN) -> int:
    """How many rows repeat a ``key`` already seen (0: all unique)."""
    if not tables:
        return 0
    column = pa.chunked_array(
        [c for t in tables for c in t.column(key).chunks], type=tables[0].schema.field(key).type
    )
    series = pl.from_arrow(column)
    assert isinstance(series, pl.Series)
    return int(series.len() - series.n_unique())


def scan_hour(
    metadata: TableMetadata, io: FileIO, files: Sequence[DataFileInfo], *, duplicates: bool = True
) -> tuple[int, int]:
    """(unsorted files, duplicate rows) among ``files``, reading only their key columns.

    Files that declare the table's sort order are trusted to be sorted; duplicates are
    counted across all ``files`` (when ``duplicates``)."""
    check = [f for f in files if not f.compacted and not f.declared_sorted]
    read = list(files) if duplicates else check
    columns = list(dict.fromkeys([*SORT_COLUMNS, KEY_COLUMN]))
    table, counts = read_files(metadata, io, read, columns)
    unsorted = 0
    offset = 0
    wanted = {f.path for f in check}
    for info, count in zip(read, counts, strict=True):
        if info.path in wanted and not is_sorted(table.slice(offset, count)):
            unsorted += 1
        offset += count
    return unsorted, duplicate_count([table]) if duplicates else 0
