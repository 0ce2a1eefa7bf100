"""What the table holds now, per hour partition: the files, who added them, what is late.

Metadata only (manifests and snapshot summaries); no data file is opened. Planning and
health both start here.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from pyiceberg.conversions import from_bytes
from pyiceberg.manifest import DataFile, DataFileContent, ManifestContent
from pyiceberg.table import Table
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.transforms import HourTransform
from pyiceberg.types import TimestamptzType

from catalog.entries import manifest_entries
from lakehouse import summary as summary_names
from lakehouse.hours import EPOCH, HOUR, hour_label, hour_of, hour_start
from lakehouse.summary import KIND as SUMMARY_KIND
from lakehouse.summary import LATE as SUMMARY_LATE
from maintenance.parquet import is_compaction_output

# Snapshot summary names of maintenance commits, defined in lakehouse.summary.
KIND_COMPACTION = summary_names.KIND_COMPACTION
KIND_MANIFESTS = summary_names.KIND_MANIFESTS
SUMMARY_COMPACTED_HOURS = summary_names.COMPACTED_HOURS
SUMMARY_DUPLICATES_REMOVED = summary_names.DUPLICATES_REMOVED
SUMMARY_GROUP = summary_names.COMPACTION_GROUP
SUMMARY_RUN = summary_names.MAINTENANCE_RUN

__all__ = [
    "EPOCH",
    "HOUR",
    "KIND_COMPACTION",
    "KIND_MANIFESTS",
    "SUMMARY_COMPACTED_HOURS",
    "SUMMARY_DUPLICATES_REMOVED",
    "SUMMARY_GROUP",
    "SUMMARY_RUN",
    "DataFileInfo",
    "HourFiles",
    "Inventory",
    "hour_label",
    "hour_of",
    "hour_start",
    "take_inventory",
]


@dataclass(frozen=True)
class DataFileInfo:
    """One live data file, as planning sees it."""

    path: str
    size: int
    records: int
    hour: int | None
    compacted: bool  # written by compaction: sorted, and deduplicated with its hour
    declared_sorted: bool  # carries the table's sort order id (writers and compaction set it)
    added_snapshot_id: int | None
    added_kind: str | None  # lakehouse.kind of the snapshot that added it (None: unknown/expired)
    late: bool  # added by a late snapshot
    added_at: datetime | None
    client_ts_min: datetime | None
    data_file: DataFile = field(compare=False, repr=False)


@dataclass(frozen=True)
class HourFiles:
    """The live files of one hour partition."""

    hour: int
    files: tuple[DataFileInfo, ...]
    delete_files: int = 0

    @property
    def label(self) -> str:
        return hour_label(self.hour)

    @property
    def start(self) -> datetime:
        return hour_start(self.hour)

    @property
    def end(self) -> datetime:
        return hour_start(self.hour + 1)

    @property
    def bytes(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def records(self) -> int:
        return sum(f.records for f in self.files)

    @property
    def late_files(self) -> tuple[DataFileInfo, ...]:
        return tuple(f for f in self.files if f.late and not f.compacted)

    @property
    def oldest_late_at(self) -> datetime | None:
        stamps = [f.added_at for f in self.late_files if f.added_at is not None]
        return min(stamps) if stamps else None


@dataclass(frozen=True)
class Inventory:
    """The table's live files at one snapshot, grouped by hour."""

    table: str
    snapshot_id: int | None
    taken_at: datetime
    sort_order_id: int
    hours: tuple[HourFiles, ...]
    other_files: int  # data files outside an hour(client_ts) partition (never planned)
    data_manifests: int
    delete_manifests: int
    metadata: TableMetadata = field(compare=False, repr=False)
    metadata_location: str = field(compare=False, repr=False, default="")

    @property
    def data_files(self) -> int:
        return sum(len(h.files) for h in self.hours) + self.other_files

    def hour(self, ordinal: int) -> HourFiles | None:
        for item in self.hours:
            if item.hour == ordinal:
                return item
        return None


def _hour_position(metadata: TableMetadata, spec_id: int, source_id: int) -> int | None:
    spec = metadata.specs().get(spec_id)
    if spec is None:
        return None
    for pos, pfield in enumerate(spec.fields):
        if pfield.source_id == source_id and isinstance(pfield.transform, HourTransform):
            return pos
    return None


def _timestamp(bounds: Mapping[int, bytes] | None, field_id: int) -> datetime | None:
    if not bounds or field_id not in bounds:
        return None
    micros = from_bytes(TimestamptzType(), bounds[field_id])
    return EPOCH + timedelta(microseconds=int(micros))


def take_inventory(table: Table) -> Inventory:
    """Read the current snapshot's manifests into an :class:`Inventory`."""
    metadata = table.metadata
    snapshot = metadata.current_snapshot()
    sort_order_id = metadata.default_sort_order_id
    client_ts_id = metadata.schema().find_field("client_ts").field_id
    summaries = {s.snapshot_id: s for s in metadata.snapshots}
    by_hour: dict[int, list[DataFileInfo]] = defaultdict(list)
    deletes_by_hour: dict[int, int] = defaultdict(int)
    other = data_manifests = delete_manifests = 0
    positions: dict[int, int | None] = {}
    if snapshot is not None:
        for manifest in snapshot.manifests(table.io):
            if manifest.content == ManifestContent.DELETES:
                delete_manifests += 1
            else:
                data_manifests += 1
            for entry in manifest_entries(manifest, table.io, discard_deleted=True):
                df = entry.data_file
                if df.spec_id not in positions:
                    positions[df.spec_id] = _hour_position(metadata, df.spec_id, client_ts_id)
                pos = positions[df.spec_id]
                hour = None if pos is None or df.partition[pos] is None else int(df.partition[pos])
                if df.content != DataFileContent.DATA:
                    if hour is not None:
                        deletes_by_hour[hour] += 1
                    continue
                if hour is None:
                    other += 1
                    continue
                added = summaries.get(entry.snapshot_id) if entry.snapshot_id is not None else None
                summary = added.summary if added is not None else None
                kind = summary.get(SUMMARY_KIND) if summary is not None else None
                late = summary is not None and (
                    summary.get(SUMMARY_LATE) == "true" or kind == summary_names.KIND_LATE
                )
                by_hour[hour].append(
                    DataFileInfo(
                        path=df.file_path,
                        size=int(df.file_size_in_bytes),
                        records=int(df.record_count),
                        hour=hour,
                        compacted=is_compaction_output(df.file_path),
                        declared_sorted=sort_order_id != 0 and df.sort_order_id == sort_order_id,
                        added_snapshot_id=entry.snapshot_id,
                        added_kind=kind,
                        late=late,
                        added_at=(EPOCH + timedelta(milliseconds=added.timestamp_ms))
                        if added
                        else None,
                        client_ts_min=_timestamp(df.lower_bounds, client_ts_id),
                        data_file=df,
                    )
                )
    hours = tuple(
        HourFiles(
            hour=h,
            files=tuple(sorted(files, key=lambda f: f.path)),
            delete_files=deletes_by_hour.get(h, 0),
        )
        for h, files in sorted(by_hour.items())
    )
    return Inventory(
        table=".".join(table.name()),
        snapshot_id=snapshot.snapshot_id if snapshot else None,
        taken_at=datetime.now(UTC),
        sort_order_id=sort_order_id,
        hours=hours,
        other_files=other,
        data_manifests=data_manifests,
        delete_manifests=delete_manifests,
        metadata=metadata,
        metadata_location=table.metadata_location,
    )
