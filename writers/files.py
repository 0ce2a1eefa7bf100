"""Write a batch sorted by ``(client_ts, event_id)`` as one data file per hour partition.

pyiceberg's ``append`` finds partitions by filtering the whole table once per partition
value, and writes every column with dictionary encoding. Our batches are sorted by
``client_ts`` already, so each hour is a contiguous slice: we cut the slices (zero copy)
and write them in parallel, each with :func:`lakehouse.datafiles.write_hour_file`
(dictionary encoding only where it pays, pyiceberg's statistics, the sort order id).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
from pyiceberg.manifest import DataFile
from pyiceberg.table import Table, TableProperties
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.utils.concurrent import ExecutorFactory
from pyiceberg.utils.properties import property_as_int

from lakehouse.datafiles import to_schema, write_hour_file
from lakehouse.hours import hours_of_micros


def micros(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A timestamp column as int64 microseconds (no nulls expected)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    return np.asarray(column.cast(pa.int64()).to_numpy(zero_copy_only=False))


def hour_slices(batch: pa.Table) -> Iterator[tuple[int, pa.Table]]:
    """(hours since epoch, rows) for each hour, from a batch sorted by ``client_ts``."""
    if batch.num_rows == 0:
        return
    hours = hours_of_micros(micros(batch.column("client_ts")))
    cuts = np.flatnonzero(np.diff(hours)) + 1
    starts = np.concatenate(([0], cuts))
    ends = np.concatenate((cuts, [len(hours)]))
    for lo, hi in zip(starts.tolist(), ends.tolist(), strict=True):
        yield int(hours[lo]), batch.slice(lo, hi - lo)


def write_sorted(table: Table, metadata: TableMetadata, batch: pa.Table) -> list[DataFile]:
    """Write ``batch`` (sorted, in the table's Arrow schema) as data files, one or more
    per hour partition, in parallel. Returns their DataFile descriptions."""
    if batch.num_rows == 0:
        return []
    batch = to_schema(batch, metadata.schema().as_arrow())
    target = property_as_int(
        metadata.properties,
        TableProperties.WRITE_TARGET_FILE_SIZE_BYTES,
        TableProperties.WRITE_TARGET_FILE_SIZE_BYTES_DEFAULT,
    ) or (1 << 62)
    write_uuid = uuid.uuid4()
    pieces: list[tuple[int, pa.Table]] = []
    for hour, rows in hour_slices(batch):
        per_file = max(1, int(target / max(1, rows.nbytes / rows.num_rows)))
        pieces.extend((hour, rows.slice(lo, per_file)) for lo in range(0, rows.num_rows, per_file))
    executor = ExecutorFactory.get_or_create()
    futures = [
        executor.submit(
            write_hour_file,
            metadata,
            table.io,
            rows,
            hour=hour,
            name=f"00000-{i}-{write_uuid}.parquet",
            overwrite=True,
        )
        for i, (hour, rows) in enumerate(pieces)
    ]
    return [f.result() for f in futures]
