"""Table health as frames for notebooks: files per hour partition, file sizes, and the
snapshot timeline with late and maintenance snapshots marked. Metadata only (pyiceberg's
``table.inspect``): no data file is read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lakehouse.hours import HOUR_US
from lakehouse.read.history import snapshot_frame
from lakehouse.read.source import check_snapshot, open_events_table
from lakehouse.settings import Settings

if TYPE_CHECKING:
    import polars as pl
    from pyiceberg.table import Table


@dataclass(frozen=True)
class TableHealthFrames:
    """``files_per_partition``: ``partition_hour`` (UTC), ``file_count``, ``bytes``,
    ``records``, one row per hour partition, oldest first.
    ``file_sizes``: ``file_path``, ``partition_hour``, ``records``, ``bytes``, one row per
    data file, smallest first.
    ``snapshots``: the snapshot timeline (see :func:`lakehouse.snapshots`), its
    ``category`` column marking ``late`` and ``maintenance`` snapshots."""

    snapshot_id: int | None
    files_per_partition: pl.DataFrame
    file_sizes: pl.DataFrame
    snapshots: pl.DataFrame

    def to_dict(self) -> dict[str, Any]:
        return {
            "snapshot_id": self.snapshot_id,
            "files_per_partition": self.files_per_partition.to_dicts(),
            "file_sizes": self.file_sizes.to_dicts(),
            "snapshots": self.snapshots.to_dicts(),
        }


def _hour_column(hours: pl.Expr) -> pl.Expr:
    """Iceberg's hour transform (hours since the epoch) as a UTC datetime."""
    import polars as pl

    return (hours.cast(pl.Int64) * HOUR_US).cast(pl.Datetime("us", "UTC"))


def frames_for(table: Table, *, snapshot_id: int | None = None) -> TableHealthFrames:
    import polars as pl

    from lakehouse import schema as spec

    snap = check_snapshot(table, snapshot_id)
    if snap is None:
        snap = table.metadata.current_snapshot_id
    timeline = snapshot_frame(table)
    hour_type, count_type = pl.Datetime("us", "UTC"), pl.Int64()
    partition_schema = pl.Schema(
        {
            "partition_hour": hour_type,
            "file_count": count_type,
            "bytes": count_type,
            "records": count_type,
        }
    )
    file_schema = pl.Schema(
        {
            "file_path": pl.String(),
            "partition_hour": hour_type,
            "records": count_type,
            "bytes": count_type,
        }
    )
    if snap is None:
        return TableHealthFrames(
            None, pl.DataFrame(schema=partition_schema), pl.DataFrame(schema=file_schema), timeline
        )
    hour = pl.col("partition").struct.field(spec.PARTITION_FIELD)
    parts = pl.from_arrow(table.inspect.partitions(snapshot_id=snap))
    files = pl.from_arrow(table.inspect.data_files(snapshot_id=snap))
    assert isinstance(parts, pl.DataFrame) and isinstance(files, pl.DataFrame)
    per_partition = parts.select(
        _hour_column(hour).alias("partition_hour"),
        pl.col("file_count").cast(pl.Int64),
        pl.col("total_data_file_size_in_bytes").cast(pl.Int64).alias("bytes"),
        pl.col("record_count").cast(pl.Int64).alias("records"),
    ).sort("partition_hour")
    sizes = files.select(
        pl.col("file_path"),
        _hour_column(hour).alias("partition_hour"),
        pl.col("record_count").cast(pl.Int64).alias("records"),
        pl.col("file_size_in_bytes").cast(pl.Int64).alias("bytes"),
    ).sort(["bytes", "file_path"])
    return TableHealthFrames(snap, per_partition, sizes, timeline)


def table_health_frames(
    settings: Settings | None = None, *, snapshot_id: int | None = None
) -> TableHealthFrames:
    """Files per hour partition, file sizes and the snapshot timeline of the events table
    (files as of ``snapshot_id``, default the current snapshot)."""
    return frames_for(open_events_table(settings), snapshot_id=snapshot_id)
