"""Write a batch sorted by ``(client_ts, event_id)`` as one data file per hour partition.

pyiceberg's ``append`` finds partitions by filtering the whole table once per partition
value, and writes every column with dictionary encoding. Our batches are sorted by
``client_ts`` already, so each hour is a contiguous slice: we cut the slices (zero copy)
and write them in parallel with ``pyarrow.parquet``, dictionary-encoding only the columns
where it pays (not the unique ``event_id``, not timestamps), then describe each file with
the same statistics functions pyiceberg's ``add_files`` uses, marking it with the
table's sort order id (pyiceberg leaves that empty).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pyiceberg.io.pyarrow import (
    compute_statistics_plan,
    data_file_statistics_from_parquet_metadata,
    parquet_path_to_id_mapping,
)
from pyiceberg.manifest import DataFile, DataFileContent, FileFormat
from pyiceberg.partitioning import PartitionFieldValue, PartitionKey
from pyiceberg.table import Table, TableProperties
from pyiceberg.table.locations import load_location_provider
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.utils.concurrent import ExecutorFactory
from pyiceberg.utils.properties import property_as_int

HOUR_US = 3_600_000_000
# Columns whose values are (nearly) unique per row, or high-cardinality text: trying a
# dictionary first only costs time (measured: about 35% of the write time at 1M rows).
NO_DICTIONARY = frozenset({"event_id", "client_ts", "server_ts", "session_id", "properties"})


def micros(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A timestamp column as int64 microseconds (no nulls expected)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    return np.asarray(column.cast(pa.int64()).to_numpy(zero_copy_only=False))


def hour_slices(batch: pa.Table) -> Iterator[tuple[int, pa.Table]]:
    """(hours since epoch, rows) for each hour, from a batch sorted by ``client_ts``."""
    if batch.num_rows == 0:
        return
    hours = micros(batch.column("client_ts")) // HOUR_US
    cuts = np.flatnonzero(np.diff(hours)) + 1
    starts = np.concatenate(([0], cuts))
    ends = np.concatenate((cuts, [len(hours)]))
    for lo, hi in zip(starts.tolist(), ends.tolist(), strict=True):
        yield int(hours[lo]), batch.slice(lo, hi - lo)


def to_schema(batch: pa.Table, arrow_schema: pa.Schema) -> pa.Table:
    """``batch`` in the table's current Arrow schema, matched by column name. Another
    writer may have added a column since the batch was conformed (new columns are always
    optional): such a column is written as nulls."""
    if batch.schema == arrow_schema:
        return batch
    names = set(batch.column_names)
    columns = [
        batch.column(f.name) if f.name in names else pa.nulls(batch.num_rows, f.type)
        for f in arrow_schema
    ]
    return pa.Table.from_arrays(columns, names=arrow_schema.names).cast(arrow_schema)


def parquet_options(properties: dict[str, str], columns: list[str]) -> dict[str, Any]:
    """pyarrow writer options from the table's ``write.parquet.*`` properties."""
    return {
        "compression": properties.get(TableProperties.PARQUET_COMPRESSION, "zstd"),
        "compression_level": property_as_int(
            properties, TableProperties.PARQUET_COMPRESSION_LEVEL, None
        ),
        "data_page_size": property_as_int(
            properties,
            TableProperties.PARQUET_PAGE_SIZE_BYTES,
            TableProperties.PARQUET_PAGE_SIZE_BYTES_DEFAULT,
        ),
        "use_dictionary": [c for c in columns if c not in NO_DICTIONARY],
        "store_decimal_as_integer": True,
    }


def write_sorted(table: Table, metadata: TableMetadata, batch: pa.Table) -> list[DataFile]:
    """Write ``batch`` (sorted, in the table's Arrow schema) as data files, one or more
    per hour partition, in parallel. Returns their DataFile descriptions."""
    if batch.num_rows == 0:
        return []
    spec = metadata.spec()
    schema = metadata.schema()
    (hour_field,) = spec.fields
    arrow_schema = schema.as_arrow()
    batch = to_schema(batch, arrow_schema)
    options = parquet_options(metadata.properties, arrow_schema.names)
    row_group_rows = property_as_int(
        metadata.properties,
        TableProperties.PARQUET_ROW_GROUP_LIMIT,
        TableProperties.PARQUET_ROW_GROUP_LIMIT_DEFAULT,
    )
    target = property_as_int(
        metadata.properties,
        TableProperties.WRITE_TARGET_FILE_SIZE_BYTES,
        TableProperties.WRITE_TARGET_FILE_SIZE_BYTES_DEFAULT,
    ) or (1 << 62)
    locations = load_location_provider(
        table_location=metadata.location, table_properties=metadata.properties
    )
    stats_plan = compute_statistics_plan(schema, metadata.properties)
    id_mapping = parquet_path_to_id_mapping(schema)
    write_uuid = uuid.uuid4()

    pieces: list[tuple[int, pa.Table]] = []
    for hour, rows in hour_slices(batch):
        per_file = max(1, int(target / max(1, rows.nbytes / rows.num_rows)))
        pieces.extend((hour, rows.slice(lo, per_file)) for lo in range(0, rows.num_rows, per_file))

    def write_one(task_id: int, hour: int, rows: pa.Table) -> DataFile:
        key = PartitionKey([PartitionFieldValue(hour_field, hour)], spec, schema)
        path = locations.new_data_location(
            data_file_name=f"00000-{task_id}-{write_uuid}.parquet", partition_key=key
        )
        output = table.io.new_output(path)
        with output.create(overwrite=True) as stream:
            writer = pq.ParquetWriter(stream, arrow_schema, **options)
            writer.write_table(rows, row_group_size=row_group_rows)
            writer.close()
        stats = data_file_statistics_from_parquet_metadata(
            parquet_metadata=writer.writer.metadata,
            stats_columns=stats_plan,
            parquet_column_mapping=id_mapping,
        )
        return DataFile.from_args(
            content=DataFileContent.DATA,
            file_path=path,
            file_format=FileFormat.PARQUET,
            partition=key.partition,
            file_size_in_bytes=len(output),
            sort_order_id=metadata.default_sort_order_id,
            spec_id=metadata.default_spec_id,
            equality_ids=None,
            key_metadata=None,
            **stats.to_serialized_dict(),
        )

    executor = ExecutorFactory.get_or_create()
    futures = [executor.submit(write_one, i, hour, rows) for i, (hour, rows) in enumerate(pieces)]
    return [f.result() for f in futures]
