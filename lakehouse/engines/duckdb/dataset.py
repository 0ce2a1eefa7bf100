"""The planned data files of a snapshot as one pyarrow dataset whose fragments carry their
``client_ts`` range, so that a time filter in the query itself skips files.

Each local Parquet file becomes a fragment with the partition expression
``lower <= client_ts <= upper`` (the file's Iceberg column bounds, from the manifest). DuckDB
pushes the filters of a query on ``events`` into the Arrow scan, and pyarrow drops the
fragments whose expression contradicts the filter before opening them: ``WHERE client_ts >=
TIMESTAMP '...'`` in the SQL prunes like ``--start`` does, without the planner seeing it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.dataset as ds
    import pyarrow.fs as pafs
    from pyiceberg.table import FileScanTask, Table

TIME_COLUMN = "client_ts"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _bound(raw: bytes | None, field_type: Any) -> datetime | None:
    if raw is None:
        return None
    from pyiceberg.conversions import from_bytes

    micros = from_bytes(field_type, raw)
    if not isinstance(micros, int):
        return None
    return _EPOCH + timedelta(microseconds=micros)


def time_range_expression(task: FileScanTask, table: Table) -> ds.Expression:
    """``lower <= client_ts <= upper`` from the file's bounds (true when a bound is absent)."""
    import pyarrow as pa
    import pyarrow.dataset as pds

    expr = pds.scalar(True)
    if TIME_COLUMN not in {f.name for f in table.schema().fields}:
        return expr
    field = table.schema().find_field(TIME_COLUMN)
    data = task.file
    lower = _bound((data.lower_bounds or {}).get(field.field_id), field.field_type)
    upper = _bound((data.upper_bounds or {}).get(field.field_id), field.field_type)
    ts_type = pa.timestamp("us", tz="UTC")
    if lower is not None:
        expr = expr & (pds.field(TIME_COLUMN) >= pa.scalar(lower, type=ts_type))
    if upper is not None:
        expr = expr & (pds.field(TIME_COLUMN) <= pa.scalar(upper, type=ts_type))
    return expr


def filesystem() -> pafs.FileSystem:
    """Where the local data files are read from (a seam: tests count the files opened)."""
    from pyarrow.fs import LocalFileSystem

    return LocalFileSystem()


def files_dataset(
    table: Table, tasks: list[FileScanTask], paths: list[str], schema: pa.Schema
) -> ds.FileSystemDataset:
    """A dataset of the local Parquet ``paths`` (one per task), each fragment bounded in time."""
    import pyarrow.dataset as pds

    return pds.FileSystemDataset.from_paths(
        paths,
        schema=schema,
        format=pds.ParquetFileFormat(),
        filesystem=filesystem(),
        partitions=[time_range_expression(t, table) for t in tasks],
    )
