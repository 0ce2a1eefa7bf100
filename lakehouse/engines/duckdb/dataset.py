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
    table: Table,
    tasks: list[FileScanTask],
    paths: list[str],
    schema: pa.Schema,
    fs: pafs.FileSystem | None = None,
) -> ds.FileSystemDataset:
    """A dataset of the Parquet ``paths`` (one per task) in ``fs`` (the local filesystem
    when None), each fragment bounded in time. Files are read as DuckDB scans them."""
    import pyarrow.dataset as pds

    return pds.FileSystemDataset.from_paths(
        paths,
        schema=schema,
        format=pds.ParquetFileFormat(),
        filesystem=fs if fs is not None else filesystem(),
        partitions=[time_range_expression(t, table) for t in tasks],
    )


def dataset_paths(table: Table, locations: list[str]) -> tuple[pafs.FileSystem, list[str]] | None:
    """The filesystem and paths in it of the data files at ``locations``: local files
    (``file://`` or absolute paths) or objects of one S3 bucket, read through the
    table's own S3 settings. None for anything else (then the rows are read whole)."""
    from urllib.parse import urlparse

    from lakehouse.storage import filesystem_for

    local = [_local(loc) for loc in locations]
    if all(p is not None for p in local):
        return filesystem(), [p for p in local if p is not None]
    parsed = [urlparse(loc) for loc in locations]
    if {u.scheme for u in parsed} <= {"s3", "s3a", "s3n"} and len({u.netloc for u in parsed}) == 1:
        fs, _, _ = filesystem_for(locations[0], io=table.io)
        return fs, [f"{u.netloc}{u.path}" for u in parsed]
    return None


def _local(path: str) -> str | None:
    if path.startswith("file://"):
        return path[len("file://") :]
    if path.startswith("/"):
        return path
    return None
