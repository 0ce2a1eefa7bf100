"""Typed results of writer operations (frozen, snake_case counts, ``to_dict()``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any


def add_counts(a: Mapping[str, int], b: Mapping[str, int]) -> dict[str, int]:
    """Counts by key, summed; most first (ties by key)."""
    out = {k: a.get(k, 0) + b.get(k, 0) for k in {*a, *b}}
    return dict(sorted(out.items(), key=lambda kv: (-kv[1], kv[0])))


@dataclass(frozen=True)
class WriteResult:
    """What one commit of the writer did. ``records_read`` always equals
    ``records_written + duplicates_dropped + records_rejected``. ``fields_folded`` counts
    the new fields kept in ``properties`` instead of becoming columns (the table reached
    ``LAKEHOUSE_MAX_COLUMNS``); ``warnings`` says so in words."""

    records_read: int = 0
    records_written: int = 0
    duplicates_dropped: int = 0
    records_rejected: int = 0
    late_records: int = 0
    on_time_records: int = 0
    snapshot_ids: tuple[int, ...] = ()
    batch_keys: tuple[str, ...] = ()
    already_committed: int = 0
    new_columns: tuple[str, ...] = ()
    late_hours: tuple[str, ...] = ()
    seconds: float = 0.0
    fields_folded: int = 0
    warnings: tuple[str, ...] = ()
    # rejected records by reason kind (lakehouse.schema.reason_kind)
    rejected_by_reason: Mapping[str, int] = field(default_factory=dict)

    def __add__(self, other: WriteResult) -> WriteResult:
        return WriteResult(
            records_read=self.records_read + other.records_read,
            records_written=self.records_written + other.records_written,
            duplicates_dropped=self.duplicates_dropped + other.duplicates_dropped,
            records_rejected=self.records_rejected + other.records_rejected,
            late_records=self.late_records + other.late_records,
            on_time_records=self.on_time_records + other.on_time_records,
            snapshot_ids=self.snapshot_ids + other.snapshot_ids,
            batch_keys=self.batch_keys + other.batch_keys,
            already_committed=self.already_committed + other.already_committed,
            new_columns=self.new_columns
            + tuple(c for c in other.new_columns if c not in self.new_columns),
            late_hours=tuple(sorted(set(self.late_hours) | set(other.late_hours))),
            seconds=self.seconds + other.seconds,
            fields_folded=self.fields_folded + other.fields_folded,
            warnings=self.warnings + tuple(w for w in other.warnings if w not in self.warnings),
            rejected_by_reason=add_counts(self.rejected_by_reason, other.rejected_by_reason),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class IngestResult:
    """What a landing-zone ingest did."""

    files: int = 0
    files_skipped: int = 0
    files_deferred: int = 0
    files_waiting: int = 0
    files_grown: int = 0  # ingested files that grew: only their new bytes read
    files_reread: int = 0  # ingested files that changed otherwise: read again from the start
    bytes_read: int = 0
    commits: int = 0
    records_read: int = 0
    records_written: int = 0
    duplicates_dropped: int = 0
    records_rejected: int = 0
    late_records: int = 0
    snapshot_ids: tuple[int, ...] = ()
    seconds: float = 0.0
    fields_folded: int = 0
    warnings: tuple[str, ...] = ()
    rejected_by_reason: Mapping[str, int] = field(default_factory=dict)
    skipped_sources: tuple[str, ...] = field(default=(), repr=False)

    @property
    def events_per_second(self) -> float:
        return self.records_read / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("skipped_sources")
        out["events_per_second"] = round(self.events_per_second, 1)
        return out
