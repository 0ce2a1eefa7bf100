"""Table health: snapshots, files, small files, files per hour partition, late events,
rejected records, and (when the maintenance package provides it) maintenance lag."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow.compute as pc

from lakehouse import schema as spec
from lakehouse import summary
from lakehouse.settings import Settings
from lakehouse.tables import EventTables

log = logging.getLogger(__name__)

SMALL_FILE_FRACTION = 0.75


@dataclass(frozen=True)
class HealthReport:
    table: str
    snapshots: int
    total_records: int
    data_files: int
    total_bytes: int
    small_files: int
    hour_partitions: int
    max_files_per_hour: int
    mean_files_per_hour: float
    late_snapshots: int
    late_records: int
    rejected_records: int
    ingested_files: int
    maintenance: dict[str, Any] | None = field(default=None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _total_records(table: Any) -> int:
    snap = table.current_snapshot()
    if snap is None or snap.summary is None:
        return 0
    return int(snap.summary.additional_properties.get("total-records", 0) or 0)


def health(tables: EventTables, settings: Settings) -> HealthReport:
    """Compute the health report from table metadata (no data files are read)."""
    events = tables.events
    for t in (events, tables.rejected, tables.ingested):
        t.refresh()
    files = events.inspect.data_files() if events.current_snapshot() else None
    small_limit = settings.target_file_size * SMALL_FILE_FRACTION
    data_files = small = partitions = max_files = 0
    total_bytes = 0
    mean = 0.0
    if files is not None and files.num_rows:
        data_files = files.num_rows
        total_bytes = int(pc.sum(files.column("file_size_in_bytes")).as_py())
        hours = pc.struct_field(files.column("partition"), spec.PARTITION_FIELD)
        counts = pc.value_counts(hours)
        per_hour = {c["values"]: c["counts"] for c in counts.to_pylist()}
        partitions = len(per_hour)
        max_files = max(per_hour.values())
        mean = data_files / partitions
        # a small file is one compaction could merge: below the target, beside others
        sizes = files.column("file_size_in_bytes").to_pylist()
        for hour, size in zip(hours.to_pylist(), sizes, strict=True):
            if size < small_limit and per_hour[hour] > 1:
                small += 1
    late_snaps = [
        s
        for s in events.metadata.snapshots
        if s.summary and s.summary.additional_properties.get(summary.KIND) == summary.KIND_LATE
    ]
    late_records = sum(
        int(s.summary.additional_properties.get("added-records", 0))
        for s in late_snaps
        if s.summary
    )
    maintenance = _maintenance_lag(events, settings)
    return HealthReport(
        table=str(settings.table),
        snapshots=len(events.metadata.snapshots),
        total_records=_total_records(events),
        data_files=data_files,
        total_bytes=total_bytes,
        small_files=small,
        hour_partitions=partitions,
        max_files_per_hour=max_files,
        mean_files_per_hour=round(mean, 2),
        late_snapshots=len(late_snaps),
        late_records=late_records,
        rejected_records=_total_records(tables.rejected),
        ingested_files=_total_records(tables.ingested),
        maintenance=maintenance,
    )


def _maintenance_lag(table: Any, settings: Settings) -> dict[str, Any] | None:
    try:
        from maintenance import health as maintenance_health
    except ImportError:
        return None
    lag_fn = getattr(maintenance_health, "maintenance_lag", None)
    if lag_fn is None:
        return None
    result = lag_fn(table, settings)
    return result.to_dict() if hasattr(result, "to_dict") else dict(result)
