"""The compaction planner: per closed hour partition, what to rewrite and why.

Planning reads metadata, plus the key columns of the few files metadata cannot vouch
for; it writes nothing. The plan is plain data: each :class:`RewriteGroup` names its
hour range, so an executor other than ours (a SQL engine running
``ALTER TABLE ... EXECUTE optimize WHERE client_ts >= ... AND client_ts < ...``) can
carry out the same plan (see :meth:`RewriteGroup.sql_predicate`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pyiceberg.table import Table
from pyiceberg.table.metadata import TableMetadata

from lakehouse.errors import ConfigError, UsageError
from lakehouse.hours import is_hot
from lakehouse.settings import Settings
from maintenance.checks import scan_hour
from maintenance.inventory import (
    DataFileInfo,
    HourFiles,
    Inventory,
    hour_label,
    hour_start,
    take_inventory,
)

log = logging.getLogger(__name__)

Reason = Literal["small-files", "late-data", "unsorted", "duplicates"]
DEFAULT_MAX_GROUP_BYTES = 512 * 1024 * 1024
DEFAULT_MAX_COMMITS = 10
MAX_COMMITS_PROPERTY = "lakehouse.compaction.max-commits"


@dataclass(frozen=True)
class CompactionOptions:
    """How compaction decides and sizes its work.

    * ``target_file_size``: on-disk bytes each rewritten file aims at.
    * ``small_file_fraction``: a file below this fraction of the target is small.
    * ``max_group_bytes``: on-disk bytes of input per rewrite group; memory stays a small
      multiple of it (an hour larger than this is split into several groups).
    * ``hot_window``: an hour stays hot (still receiving on-time data, left alone) until
      this long after it ends (:func:`lakehouse.hours.is_hot`).
    * ``deduplicate``: drop rows repeating an ``event_id`` (keeping the earliest ``server_ts``).
    * ``check_data``: read key columns to find unsorted files and duplicates in hours that
      metadata alone does not select.
    * ``max_commits``: a run commits its groups in at most this many snapshots (None: the
      table property ``lakehouse.compaction.max-commits``, default 10). Each commit holds
      a contiguous share of the groups; one that fails or loses to a concurrent change
      loses only its own groups.
    """

    target_file_size: int = 128 * 1024 * 1024
    small_file_fraction: float = 0.75
    max_group_bytes: int = DEFAULT_MAX_GROUP_BYTES
    hot_window: timedelta = timedelta(hours=1)
    deduplicate: bool = True
    check_data: bool = True
    max_commits: int | None = None

    def __post_init__(self) -> None:
        if self.target_file_size <= 0 or self.max_group_bytes <= 0:
            raise UsageError("target file size and max group size must be positive")
        if self.max_commits is not None and self.max_commits < 1:
            raise UsageError("max_commits must be at least 1")
        if not 0 < self.small_file_fraction <= 1:
            raise UsageError("small_file_fraction must be in (0, 1]")
        if self.hot_window < timedelta(0):
            raise UsageError("hot_window cannot be negative")

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> CompactionOptions:
        """Target size from the settings; the hot window is the writers' allowed lateness."""
        values: dict[str, Any] = {
            "target_file_size": settings.target_file_size,
            "hot_window": settings.allowed_lateness,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @property
    def small_file_bytes(self) -> int:
        return int(self.target_file_size * self.small_file_fraction)

    def for_table(self, table: Table) -> CompactionOptions:
        """These options with ``max_commits`` resolved from the table's property."""
        if self.max_commits is not None:
            return self
        return replace(self, max_commits=max_commits_property(table.properties))


def max_commits_property(properties: Mapping[str, str]) -> int:
    """The table property ``lakehouse.compaction.max-commits`` (default 10)."""
    raw = properties.get(MAX_COMMITS_PROPERTY)
    if raw is None or not raw.strip():
        return DEFAULT_MAX_COMMITS
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(
            f"table property {MAX_COMMITS_PROPERTY} must be a whole number >= 1, not {raw!r}"
        )
    return value


def commit_batches(
    groups: tuple[RewriteGroup, ...], max_commits: int
) -> list[tuple[RewriteGroup, ...]]:
    """``groups`` cut, in order, into at most ``max_commits`` contiguous batches of
    near-equal size: each batch is one commit."""
    if not groups:
        return []
    size = math.ceil(len(groups) / max(1, max_commits))
    return [groups[i : i + size] for i in range(0, len(groups), size)]


@dataclass(frozen=True)
class RewriteGroup:
    """Files of one hour rewritten and committed together (one commit)."""

    group_id: str  # "<hour>#<part>"
    hour: int
    part: int  # 1-based, of ``parts`` groups in this hour
    parts: int
    reasons: tuple[Reason, ...]
    files: tuple[DataFileInfo, ...]
    siblings: tuple[DataFileInfo, ...] = ()  # the hour's files in its other groups (for dedupe)

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

    def sql_predicate(self, column: str = "client_ts") -> str:
        """The group's hour range as SQL (Trino/Athena), for an engine-side executor."""
        fmt = "%Y-%m-%d %H:%M:%S UTC"
        return (
            f"{column} >= TIMESTAMP '{self.start.strftime(fmt)}' "
            f"AND {column} < TIMESTAMP '{self.end.strftime(fmt)}'"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "group_id": self.group_id,
            "hour": hour_label(self.hour),
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "part": self.part,
            "parts": self.parts,
            "reasons": list(self.reasons),
            "files": len(self.files),
            "bytes": self.bytes,
            "records": self.records,
            "late_files": sum(1 for f in self.files if f.late and not f.compacted),
            "file_paths": [f.path for f in self.files],
        }


@dataclass(frozen=True)
class HourSkip:
    hour: str
    reason: str


@dataclass(frozen=True)
class CompactionPlan:
    """What compaction will do, and why; no side effects were needed to make it."""

    table: str
    snapshot_id: int | None
    planned_at: datetime
    options: CompactionOptions
    groups: tuple[RewriteGroup, ...]
    hours_total: int
    hours_hot: int
    hours_clean: int
    skipped: tuple[HourSkip, ...] = ()
    metadata: TableMetadata | None = field(default=None, compare=False, repr=False)
    metadata_location: str = field(default="", compare=False, repr=False)

    @property
    def files(self) -> int:
        return sum(len(g.files) for g in self.groups)

    @property
    def bytes(self) -> int:
        return sum(g.bytes for g in self.groups)

    @property
    def hours_selected(self) -> int:
        return len({g.hour for g in self.groups})

    @property
    def max_commits(self) -> int:
        return self.options.max_commits or DEFAULT_MAX_COMMITS

    def batches(self) -> list[tuple[RewriteGroup, ...]]:
        """The groups cut into the commits a run makes (at most ``max_commits``)."""
        return commit_batches(self.groups, self.max_commits)

    def to_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "snapshot_id": self.snapshot_id,
            "planned_at": self.planned_at.isoformat(),
            "target_file_size": self.options.target_file_size,
            "max_group_bytes": self.options.max_group_bytes,
            "max_commits": self.max_commits,
            "commits_planned": len(self.batches()),
            "hours_total": self.hours_total,
            "hours_hot": self.hours_hot,
            "hours_clean": self.hours_clean,
            "hours_selected": self.hours_selected,
            "groups_planned": len(self.groups),
            "files_planned": self.files,
            "bytes_planned": self.bytes,
            "groups": [g.to_dict() for g in self.groups],
            "skipped": [{"hour": s.hour, "reason": s.reason} for s in self.skipped],
        }


def plan_compaction(
    table: Table,
    options: CompactionOptions | None = None,
    *,
    now: datetime | None = None,
    hours: set[int] | None = None,
) -> CompactionPlan:
    """Plan compaction of the table's current snapshot (optionally only ``hours``)."""
    options = (options or CompactionOptions()).for_table(table)
    return plan_from_inventory(take_inventory(table), table, options, now=now, hours=hours)


def plan_from_inventory(
    inventory: Inventory,
    table: Table,
    options: CompactionOptions,
    *,
    now: datetime | None = None,
    hours: set[int] | None = None,
) -> CompactionPlan:
    now = now or datetime.now(UTC)
    options = options.for_table(table)
    groups: list[RewriteGroup] = []
    skipped: list[HourSkip] = []
    hot = clean = 0
    for item in inventory.hours:
        if hours is not None and item.hour not in hours:
            continue
        if is_hot(item.hour, options.hot_window, now):
            hot += 1
            continue
        if item.delete_files:
            skipped.append(
                HourSkip(
                    item.label, f"{item.delete_files} delete files (merge-on-read) not supported"
                )
            )
            continue
        reasons = hour_reasons(item, options, inventory, table)
        if not reasons:
            clean += 1
            continue
        groups.extend(split_hour(item, reasons, options))
    plan = CompactionPlan(
        table=inventory.table,
        snapshot_id=inventory.snapshot_id,
        planned_at=now,
        options=options,
        groups=tuple(groups),
        hours_total=len(inventory.hours),
        hours_hot=hot,
        hours_clean=clean,
        skipped=tuple(skipped),
        metadata=inventory.metadata,
        metadata_location=inventory.metadata_location,
    )
    log.info(
        "planned %s groups (%s files, %s bytes) over %s hours of %s",
        len(plan.groups),
        plan.files,
        plan.bytes,
        plan.hours_selected,
        plan.table,
    )
    return plan


def hour_reasons(
    item: HourFiles, options: CompactionOptions, inventory: Inventory, table: Table
) -> tuple[Reason, ...]:
    """Why this closed hour needs a rewrite (empty: it does not).

    Compaction outputs are sorted and deduplicated: an hour holding only those is clean
    without reading anything. Otherwise metadata decides (small files, files added by late
    snapshots); failing that, the key columns are read to find unsorted files (those not
    declaring the sort order) and event_ids repeated across files.
    """
    fresh = [f for f in item.files if not f.compacted]
    if not fresh:
        return ()
    reasons: list[Reason] = []
    if len(item.files) > 1 and any(f.size < options.small_file_bytes for f in fresh):
        reasons.append("small-files")
    if any(f.late for f in fresh):
        reasons.append("late-data")
    if reasons or not options.check_data:
        return tuple(reasons)
    # A lone file cannot repeat another's event_ids (writers deduplicate each batch).
    cross_file = options.deduplicate and len(item.files) > 1
    if not cross_file and all(f.declared_sorted for f in fresh):
        return ()
    unsorted, duplicates = scan_hour(
        inventory.metadata, table.io, item.files, duplicates=cross_file
    )
    if unsorted:
        reasons.append("unsorted")
    if duplicates and options.deduplicate:
        reasons.append("duplicates")
    return tuple(reasons)


def split_hour(
    item: HourFiles, reasons: tuple[Reason, ...], options: CompactionOptions
) -> list[RewriteGroup]:
    """Bin-pack the hour's files, in client_ts order, into groups of bounded input size."""
    ordered = sorted(item.files, key=lambda f: (f.client_ts_min or item.start, f.path))
    bins: list[list[DataFileInfo]] = [[]]
    size = 0
    for info in ordered:
        if bins[-1] and size + info.size > options.max_group_bytes:
            bins.append([])
            size = 0
        bins[-1].append(info)
        size += info.size
    parts = len(bins)
    groups = []
    for index, files in enumerate(bins, start=1):
        members = set(f.path for f in files)
        siblings = tuple(f for f in item.files if f.path not in members) if parts > 1 else ()
        groups.append(
            RewriteGroup(
                group_id=f"{item.label}#{index}",
                hour=item.hour,
                part=index,
                parts=parts,
                reasons=reasons,
                files=tuple(files),
                siblings=siblings,
            )
        )
    return groups
