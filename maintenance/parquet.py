"""Write one compaction output file: Parquet with the table's ``write.parquet.*`` settings,
described with pyiceberg's own statistics functions, marked with the table's sort order.

Compaction outputs are named ``compacted-<uuid>-<n>.parquet``. The name is how planning
tells them from writer files after the snapshot that added them has expired (writers
mark their sorted files with the sort order id too, so that id alone cannot tell).
"""

from __future__ import annotations

import posixpath
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pyiceberg.io import FileIO
from pyiceberg.io.pyarrow import (
    compute_statistics_plan,
    data_file_statistics_from_parquet_metadata,
    parquet_path_to_id_mapping,
)
from pyiceberg.manifest import DataFile, DataFileContent, FileFormat
from pyiceberg.partitioning import PartitionFieldValue, PartitionKey
from pyiceberg.table import TableProperties
from pyiceberg.table.locations import load_location_provider
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.transforms import HourTransform
from pyiceberg.utils.properties import property_as_int

OUTPUT_PREFIX = "compacted-"
# Unique or high-cardinality columns: dictionary encoding only costs time there.
_NO_DICTIONARY = frozenset({"event_id", "client_ts", "server_ts", "session_id", "properties"})


def is_compaction_output(path: str) -> bool:
    return posixpath.basename(path).startswith(OUTPUT_PREFIX)


def writer_options(properties: dict[str, str], columns: list[str]) -> dict[str, Any]:
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
        "use_dictionary": [c for c in columns if c not in _NO_DICTIONARY],
    }


def write_hour_file(
    metadata: TableMetadata, io: FileIO, rows: pa.Table, *, hour: int, name: str
) -> DataFile:
    """Write ``rows`` (all in hour partition ``hour``, already sorted) as one data file."""
    schema = metadata.schema()
    spec = metadata.spec()
    arrow_schema = schema.as_arrow()
    if rows.schema != arrow_schema:
        rows = rows.cast(arrow_schema)
    hour_fields = [f for f in spec.fields if isinstance(f.transform, HourTransform)]
    if len(spec.fields) != 1 or len(hour_fields) != 1:
        raise ValueError(f"compaction writes hour(client_ts) partitions only, not {spec}")
    key = PartitionKey([PartitionFieldValue(hour_fields[0], hour)], spec, schema)
    locations = load_location_provider(
        table_location=metadata.location, table_properties=metadata.properties
    )
    path = locations.new_data_location(data_file_name=name, partition_key=key)
    output = io.new_output(path)
    row_group_rows = property_as_int(
        metadata.properties,
        TableProperties.PARQUET_ROW_GROUP_LIMIT,
        TableProperties.PARQUET_ROW_GROUP_LIMIT_DEFAULT,
    )
    with output.create(overwrite=False) as stream:
        writer = pq.ParquetWriter(
            stream, arrow_schema, **writer_options(metadata.properties, arrow_schema.names)
        )
        writer.write_table(rows, row_group_size=row_group_rows)
        writer.close()
    stats = data_file_statistics_from_parquet_metadata(
        parquet_metadata=writer.writer.metadata,
        stats_columns=compute_statistics_plan(schema, metadata.properties),
        parquet_column_mapping=parquet_path_to_id_mapping(schema),
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
