"""Data checks the planner runs when metadata cannot answer: is a file sorted by the
table's sort order, does an hour hold duplicate ``event_id``s. Reads only the key columns."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl
import pyarrow as pa
from pyiceberg.expressions import AlwaysTrue
from pyiceberg.io import FileIO
from pyiceberg.io.pyarrow import ArrowScan, PyArrowFileIO
from pyiceberg.schema import Schema
from pyiceberg.table import FileScanTask
from pyiceberg.table.metadata import TableMetadata

from lakehouse.schema import SORT_COLUMNS
from maintenance.inventory import DataFileInfo
from maintenance.parquet import read_local_parquet_files, read_parquet_files

KEY_COLUMN = "event_id"


def read_file(
    metadata: TableMetadata, io: FileIO, info: DataFileInfo, columns: Sequence[str] | None = None
) -> pa.Table:
    """One data file projected onto the table's current schema (all columns, or ``columns``)."""
    schema = metadata.schema() if columns is None else metadata.schema().select(*columns)
    return ArrowScan(metadata, io, schema, AlwaysTrue()).to_table([FileScanTask(info.data_file)])


def schema_history_is_stable(metadata: TableMetadata) -> bool:
    """True when every schema the table ever had agrees with the current one on each
    top-level column: same name and type for the same field id, and no name of an old
    field reused by another. Then any data file's columns map to the current schema by
    name (a column added later is missing from older files and reads as nulls)."""
    current = metadata.schema()
    by_id = {f.field_id: f for f in current.fields}
    by_name = {f.name: f for f in current.fields}
    if any(not f.field_type.is_primitive for f in current.fields):
        return False
    for old in metadata.schemas:
        for field in old.fields:
            now = by_id.get(field.field_id)
            if now is not None and (now.name != field.name or now.field_type != field.field_type):
                return False
            if now is None and field.name in by_name:
                return False
    return True


def _local_paths(io: FileIO, infos: Sequence[DataFileInfo]) -> list[str] | None:
    """The files' paths on the local disk; None when any of them is elsewhere."""
    if not isinstance(io, PyArrowFileIO):
        return None
    located = [PyArrowFileIO.parse_location(i.path) for i in infos]
    if any(scheme not in ("", "file") for scheme, _, _ in located):
        return None
    return [path for _, _, path in located]


def read_frame(
    metadata: TableMetadata,
    io: FileIO,
    infos: Sequence[DataFileInfo],
    columns: Sequence[str] | None = None,
) -> tuple[pl.DataFrame, list[int]]:
    """:func:`read_files` as a Polars frame. Files on the local disk are read by Polars
    (:func:`maintenance.parquet.read_local_parquet_files`) while the schema history is
    stable, when their total row count is what the metadata says; otherwise, and for
    other file systems, as :func:`read_files` reads them."""
    schema = metadata.schema() if columns is None else metadata.schema().select(*columns)
    counts = [i.records for i in infos]
    paths = _local_paths(io, infos) if infos and schema_history_is_stable(metadata) else None
    if paths is not None:
        local = read_local_parquet_files(paths, schema.as_arrow())
        if local is not None and local.height == sum(counts):
            return local, counts
    table, counts = read_files(metadata, io, infos, columns)
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame, counts


def _read_dataset(
    io: FileIO, infos: Sequence[DataFileInfo], schema: Schema
) -> list[pa.Table] | None:
    """The files read many at once through Arrow's file system (columns matched by name),
    one table per file in ``infos`` order; None when ``io`` has no Arrow file system."""
    if not isinstance(io, PyArrowFileIO):
        return None
    located = [PyArrowFileIO.parse_location(i.path) for i in infos]
    if len({(scheme, netloc) for scheme, netloc, _ in located}) != 1:
        return None
    scheme, netloc, _ = located[0]
    paths = [path for _, _, path in located]
    return read_parquet_files(io.fs_by_scheme(scheme, netloc), paths, schema.as_arrow())


def read_files(
    metadata: TableMetadata,
    io: FileIO,
    infos: Sequence[DataFileInfo],
    columns: Sequence[str] | None = None,
) -> tuple[pa.Table, list[int]]:
    """Several files read at once, concatenated in order, with each file's row count.

    While the table's schema history is stable (:func:`schema_history_is_stable`), the
    files are read many at once through Arrow (:func:`maintenance.parquet.read_parquet_files`); otherwise (renamed, retyped or nested columns)
    through pyiceberg's projection. Counts come from metadata and are checked against
    what was read; on a mismatch the files are read one by one instead."""
    schema = metadata.schema() if columns is None else metadata.schema().select(*columns)
    if not infos:
        return schema.as_arrow().empty_table(), []
    counts = [i.records for i in infos]
    parts = _read_dataset(io, infos, schema) if schema_history_is_stable(metadata) else None
    if parts is not None and [p.num_rows for p in parts] == counts:
        return pa.concat_tables(parts), counts
    table = ArrowScan(metadata, io, schema, AlwaysTrue()).to_table(
        [FileScanTask(i.data_file) for i in infos]
    )
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
