"""Open the events table and scan it as a Polars LazyFrame, filters pushed down."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from lakehouse.errors import UsageError
from lakehouse.settings import Settings

if TYPE_CHECKING:
    import polars as pl
    from pyiceberg.table import Table

log = logging.getLogger(__name__)

# Polars plans Iceberg scans with its ``polars_iceberg`` plugin when installed, otherwise
# with pyiceberg after a PerformanceWarning; this variable picks pyiceberg without the
# warning (polars 2.1 has no parameter for it: ``reader_override`` picks the *reader*).
PLANNER_ENV = "POLARS_ICEBERG_PLANNER"


def open_events_table(settings: Settings | None = None) -> Table:
    """The events table the settings name (a clear error says to run ``lakehouse init``);
    :func:`lakehouse.tables.open_events_table`."""
    from lakehouse.tables import open_events_table as open_table

    return open_table(settings)


def as_utc(value: datetime | None, name: str) -> datetime | None:
    """``value`` in UTC; a naive datetime is read as UTC."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise UsageError(f"{name} must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def check_range(
    start: datetime | None, end: datetime | None
) -> tuple[datetime | None, datetime | None]:
    """Normalise a ``[start, end)`` range of client time; start must come before end."""
    start, end = as_utc(start, "start"), as_utc(end, "end")
    if start is not None and end is not None and start >= end:
        raise UsageError(f"start ({start.isoformat()}) must be before end ({end.isoformat()})")
    return start, end


def check_snapshot(table: Table, snapshot_id: int | None) -> int | None:
    """``snapshot_id`` if the table has it (None stays None: the current snapshot)."""
    if snapshot_id is None:
        return None
    if table.snapshot_by_id(int(snapshot_id)) is None:
        raise UsageError(
            f"snapshot {snapshot_id} does not exist in {'.'.join(table.name())} (it may have "
            "been expired); `lakehouse snapshots` lists the snapshots readers can pin"
        )
    return int(snapshot_id)


def scan_table(table: Table, *, snapshot_id: int | None = None) -> pl.LazyFrame:
    """``pl.scan_iceberg`` of ``table`` at ``snapshot_id`` (default: the current one)."""
    import polars as pl

    os.environ.setdefault(PLANNER_ENV, "pyiceberg")
    snapshot_id = check_snapshot(table, snapshot_id)
    if snapshot_id is None and table.current_snapshot() is None:
        # nothing committed yet: an empty frame with the table's columns
        return pl.LazyFrame(schema=pl.Schema(_empty_schema(table)))
    return pl.scan_iceberg(
        table, snapshot_id=snapshot_id, storage_options=polars_storage_options(table)
    )


# pyiceberg's S3 settings (``s3.*``, with ``client.*`` as fallbacks, as pyiceberg reads
# them) -> the object-store options Polars' own Parquet reader takes.
_S3_OPTIONS = {
    "aws_endpoint_url": ("s3.endpoint",),
    "aws_region": ("s3.region", "client.region"),
    "aws_access_key_id": ("s3.access-key-id", "client.access-key-id"),
    "aws_secret_access_key": ("s3.secret-access-key", "client.secret-access-key"),
    "aws_session_token": ("s3.session-token", "client.session-token"),
}


def polars_storage_options(table: Table) -> dict[str, str] | None:
    """Storage options for Polars to read ``table``'s files where pyiceberg does: Polars
    reads the Parquet files itself and would otherwise use only the process's AWS
    environment, missing a configured endpoint or keys. None for local tables."""
    location = table.metadata.location
    if not location.startswith(("s3://", "s3a://", "s3n://")):
        return None
    props = table.io.properties
    options = {
        option: value
        for option, keys in _S3_OPTIONS.items()
        if (value := next((props[k] for k in keys if props.get(k)), None))
    }
    endpoint = options.get("aws_endpoint_url", "")
    if endpoint.startswith("http://"):
        options["aws_allow_http"] = "true"
    if endpoint and str(props.get("s3.force-virtual-addressing", "false")).lower() != "true":
        options["aws_virtual_hosted_style_request"] = "false"  # path style, as pyiceberg
    return options or None


def _empty_schema(table: Table) -> dict[str, pl.DataType]:
    import polars as pl

    arrow = table.schema().as_arrow()
    return dict(pl.from_arrow(arrow.empty_table()).schema)  # type: ignore[union-attr]


def time_filter(
    lf: pl.LazyFrame, start: datetime | None, end: datetime | None, column: str = "client_ts"
) -> pl.LazyFrame:
    """Keep ``start <= column < end`` (either bound may be None)."""
    import polars as pl

    if start is not None:
        lf = lf.filter(pl.col(column) >= start)
    if end is not None:
        lf = lf.filter(pl.col(column) < end)
    return lf


def pinned_events(
    settings: Settings | None = None,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    snapshot_id: int | None = None,
) -> tuple[pl.LazyFrame, int | None]:
    """:func:`events` and the snapshot id it reads (None: the table is empty)."""
    start, end = check_range(start, end)
    table = open_events_table(settings)
    snap = check_snapshot(table, snapshot_id)
    if snap is None:
        snap = table.metadata.current_snapshot_id
    log.debug("scanning %s at snapshot %s [%s, %s)", table.name(), snap, start, end)
    return time_filter(scan_table(table, snapshot_id=snap), start, end), snap


def events(
    settings: Settings | None = None,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    snapshot_id: int | None = None,
) -> pl.LazyFrame:
    """The events table as a LazyFrame: every column, one row per event.

    ``start``/``end`` keep events with ``start <= client_ts < end`` (naive datetimes are
    UTC). The filter is pushed into the Iceberg scan, so hour partitions outside the range
    are never read. ``snapshot_id`` pins a snapshot (see :func:`snapshots`); by default the
    table's current snapshot at the time of the call is read, and the frame keeps reading
    that one however often it is collected.
    """
    return pinned_events(settings, start=start, end=end, snapshot_id=snapshot_id)[0]
