"""Maintenance lag, for ``lakehouse health``: how far maintenance is behind.

Metadata only (manifests, snapshot summaries, table properties): cheap enough to call
from a health check. The core command calls :func:`maintenance_lag`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pyiceberg.table import Table

from lakehouse.durations import format_duration
from lakehouse.hours import EPOCH, is_hot
from lakehouse.settings import Settings
from maintenance.check import json_property, read_last_check
from maintenance.inventory import take_inventory
from maintenance.lease import read_lease
from maintenance.plan import CompactionOptions
from maintenance.runner import LAST_RUN_PROPERTY

_MAX_LISTED_HOURS = 48


@dataclass(frozen=True)
class MaintenanceLag:
    """How far maintenance is behind on one table."""

    table: str
    checked_at: datetime
    late_hours: int  # closed hours holding late data no compaction has rewritten yet
    late_hour_labels: tuple[str, ...]  # the oldest of them (at most 48)
    oldest_late_hour: str | None
    oldest_late_age: timedelta | None  # since the oldest such late data was committed
    small_files: int  # un-compacted small files in closed hours (maintenance's backlog)
    small_files_hot: int  # small files in hot hours (normal: compacted once the hour closes)
    hours_pending: int  # closed hours holding un-compacted small or late files
    data_files: int
    data_manifests: int
    snapshots: int
    oldest_snapshot_age: timedelta | None
    last_run: dict[str, Any] | None  # the record the last run stored (counts, ok, times)
    last_run_age: timedelta | None
    last_run_ok: bool | None
    lease_holder: str | None
    lease_expires_at: datetime | None
    last_check_at: str | None = None  # `lakehouse check`: when, whether whole, problems found
    last_check_ok: bool | None = None
    last_check_problems: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in self.__dict__.items():
            if isinstance(value, timedelta):
                out[key] = format_duration(value)
                out[f"{key}_seconds"] = value.total_seconds()
            elif isinstance(value, datetime):
                out[key] = value.isoformat()
            elif isinstance(value, tuple):
                out[key] = list(value)
            elif value is None and key in {
                "oldest_late_age",
                "oldest_snapshot_age",
                "last_run_age",
            }:
                out[key] = None
                out[f"{key}_seconds"] = None
            else:
                out[key] = value
        return out


def maintenance_lag(
    table: Table,
    settings: Settings | None = None,
    *,
    options: CompactionOptions | None = None,
    now: datetime | None = None,
) -> MaintenanceLag:
    """Measure the maintenance lag of ``table`` (target size and hot window from ``settings``)."""
    now = now or datetime.now(UTC)
    if options is None:
        options = (
            CompactionOptions.from_settings(settings)
            if settings is not None
            else CompactionOptions()
        )
    inventory = take_inventory(table)
    late: list[tuple[str, datetime]] = []
    small = small_hot = pending = 0
    for item in inventory.hours:
        fresh_small = sum(
            1 for f in item.files if not f.compacted and f.size < options.small_file_bytes
        )
        if is_hot(item.hour, options.hot_window, now):
            small_hot += fresh_small
            continue
        small += fresh_small
        oldest = item.oldest_late_at
        if oldest is not None:
            late.append((item.label, oldest))
        if oldest is not None or (fresh_small and len(item.files) > 1):
            pending += 1
    oldest_late = min(late, key=lambda x: x[1]) if late else None
    snapshots = table.metadata.snapshots
    oldest_snapshot = min((s.timestamp_ms for s in snapshots), default=None)
    last_run = _last_run(table)
    finished = _parse_time(last_run.get("finished_at")) if last_run else None
    lease = read_lease(table)
    last_check = read_last_check(table) or {}
    return MaintenanceLag(
        table=inventory.table,
        checked_at=now,
        late_hours=len(late),
        late_hour_labels=tuple(label for label, _ in sorted(late)[:_MAX_LISTED_HOURS]),
        oldest_late_hour=oldest_late[0] if oldest_late else None,
        oldest_late_age=(now - oldest_late[1]) if oldest_late else None,
        small_files=small,
        small_files_hot=small_hot,
        hours_pending=pending,
        data_files=inventory.data_files,
        data_manifests=inventory.data_manifests,
        snapshots=len(snapshots),
        oldest_snapshot_age=(now - (EPOCH + timedelta(milliseconds=oldest_snapshot)))
        if oldest_snapshot
        else None,
        last_run=last_run,
        last_run_age=(now - finished) if finished else None,
        last_run_ok=bool(last_run.get("ok")) if last_run else None,
        lease_holder=lease.owner if lease and not lease.expired(now) else None,
        lease_expires_at=lease.expires_at if lease and not lease.expired(now) else None,
        last_check_at=last_check.get("checked_at"),
        last_check_ok=last_check.get("ok"),
        last_check_problems=last_check.get("problems"),
    )


def _last_run(table: Table) -> dict[str, Any] | None:
    return json_property(table, LAST_RUN_PROPERTY)


def _parse_time(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None
