"""The table spec: schemas, partitioning, sort order and properties of the tables we own.

* the events table (``analytics.events`` by default), partitioned by ``hour(client_ts)``
  and sorted by ``(client_ts, event_id)``;
* ``<events>_rejected``: every record we refused, with the reason and where it came from;
* ``<events>_ingested``: the landing-zone files already committed (exactly-once ingest).
"""

from __future__ import annotations

import pyarrow as pa
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table.sorting import NullOrder, SortDirection, SortField, SortOrder
from pyiceberg.transforms import DayTransform, HourTransform, IdentityTransform
from pyiceberg.types import (
    LongType,
    NestedField,
    StringType,
    TimestamptzType,
)

from lakehouse import summary

# Columns every event has; ``session_id`` and ``properties`` are optional.
REQUIRED_COLUMNS = ("event_id", "user_id", "event_type", "client_ts", "server_ts")
CORE_COLUMNS = (*REQUIRED_COLUMNS, "session_id", "properties")
SORT_COLUMNS = ("client_ts", "event_id")
PARTITION_FIELD = "client_ts_hour"
TIMESTAMP_COLUMNS = ("client_ts", "server_ts")

EVENT_SCHEMA = Schema(
    NestedField(1, "event_id", StringType(), required=True, doc="Unique id; the dedupe key"),
    NestedField(2, "user_id", StringType(), required=True),
    NestedField(3, "event_type", StringType(), required=True),
    NestedField(
        4, "client_ts", TimestamptzType(), required=True, doc="When the device says it happened"
    ),
    NestedField(
        5, "server_ts", TimestamptzType(), required=True, doc="When the platform received it"
    ),
    NestedField(6, "session_id", StringType(), required=False),
    NestedField(7, "properties", StringType(), required=False, doc="JSON object text"),
)

EVENT_PARTITION_SPEC = PartitionSpec(
    PartitionField(source_id=4, field_id=1000, transform=HourTransform(), name=PARTITION_FIELD)
)

EVENT_SORT_ORDER = SortOrder(
    SortField(
        source_id=4,
        transform=IdentityTransform(),
        direction=SortDirection.ASC,
        null_order=NullOrder.NULLS_FIRST,
    ),
    SortField(
        source_id=1,
        transform=IdentityTransform(),
        direction=SortDirection.ASC,
        null_order=NullOrder.NULLS_FIRST,
    ),
)

EVENT_TABLE_PROPERTIES = {
    "format-version": "2",
    "write.parquet.compression-codec": "zstd",
    # level 1: ingest favours speed (zstd 3 was ~20% slower for ~3% smaller files here)
    "write.parquet.compression-level": "1",
    "commit.retry.num-retries": "10",
    "commit.retry.min-wait-ms": "50",
    "commit.retry.max-wait-ms": "5000",
    # Merge manifests on append so that planning and commit latency stay flat, into
    # manifests of 256 KB (about 700 files): a table of months keeps several, each over a
    # range of hours, so a compaction of recent hours rewrites only the recent ones and a
    # merge rewrites at most 256 KB (with 8 MB, one manifest listed every file and every
    # compaction commit and merge rewrote all of it).
    "commit.manifest-merge.enabled": "true",
    "commit.manifest.min-count-to-merge": "32",
    "commit.manifest.target-size-bytes": str(256 * 1024),
    # Old metadata.json files are pruned as we go; snapshots are expired by maintenance.
    "write.metadata.delete-after-commit.enabled": "true",
    "write.metadata.previous-versions-max": "50",
    summary.KIND: summary.TABLE_EVENTS,
}

REJECTS_SCHEMA = Schema(
    NestedField(1, "rejected_at", TimestamptzType(), required=True),
    NestedField(2, "reason", StringType(), required=True),
    NestedField(
        3, "source", StringType(), required=True, doc="File URI, or 'batch:<id>' for API input"
    ),
    NestedField(4, "line", LongType(), required=False, doc="1-based line in the source file"),
    NestedField(5, "raw", StringType(), required=False, doc="The payload as received"),
    NestedField(6, "batch_key", StringType(), required=True),
)
# A reason reads "<kind>: <details>" or "<field>: <kind>: <details>"; counts by reason
# count kinds (``reason_kind``). The pattern is valid in Python and in Rust (Polars).
REASON_KIND_PATTERN = r"^([A-Za-z0-9_.-]+:[^:]*|[^:]*)"


def reason_kind(reason: str) -> str:
    """The kind of a reject reason, so the same problem with different details counts
    once: the text before the first ``:`` (``invalid JSON: line 1 column 85`` -> ``invalid
    JSON``), or before the second one when the first part names a field (``client_ts: not
    an ISO-8601 timestamp: 'yesterday'`` -> ``client_ts: not an ISO-8601 timestamp``)."""
    import re

    match = re.match(REASON_KIND_PATTERN, reason)
    return (match.group(1) if match else reason).strip()


REJECTS_PARTITION_SPEC = PartitionSpec(
    PartitionField(source_id=1, field_id=1000, transform=DayTransform(), name="rejected_day")
)

INGESTED_SCHEMA = Schema(
    NestedField(1, "source", StringType(), required=True, doc="File URI"),
    NestedField(2, "size", LongType(), required=True),
    NestedField(3, "records", LongType(), required=True),
    NestedField(4, "batch_key", StringType(), required=True),
    NestedField(5, "ingested_at", TimestamptzType(), required=True),
    NestedField(
        6,
        "fingerprint",
        StringType(),
        required=False,
        doc="What the file was when read (S3 ETag or local inode and mtime; tail digest)",
    ),
    NestedField(7, "lines", LongType(), required=False, doc="Newlines in the bytes read"),
)

COMPANION_PROPERTIES = {
    "format-version": "2",
    "write.parquet.compression-codec": "zstd",
    "commit.retry.num-retries": "10",
    "commit.manifest-merge.enabled": "true",
    "write.metadata.delete-after-commit.enabled": "true",
    "write.metadata.previous-versions-max": "20",
}

TIMESTAMP_ARROW = pa.timestamp("us", tz="UTC")

# Snapshot summary keys written by this project (defined in lakehouse.summary).
SUMMARY_KIND = summary.KIND
SUMMARY_BATCH_KEY = summary.BATCH_KEY
SUMMARY_IDEMPOTENCY_KEY = summary.IDEMPOTENCY_KEY
SUMMARY_LATE = summary.LATE
SUMMARY_LATE_HOURS = summary.LATE_HOURS
SUMMARY_RECORDS = summary.RECORDS
SUMMARY_WRITER = summary.WRITER


def iceberg_type_for_arrow(arrow_type: pa.DataType) -> object | None:
    """The Iceberg type a new column gets for an inferred Arrow type (None: not a column)."""
    from pyiceberg.types import BooleanType, DoubleType

    if pa.types.is_boolean(arrow_type):
        return BooleanType()
    if pa.types.is_integer(arrow_type):
        return LongType()
    if pa.types.is_floating(arrow_type):
        return DoubleType()
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return StringType()
    if pa.types.is_timestamp(arrow_type) and arrow_type.tz is not None:
        return TimestamptzType()
    return None
