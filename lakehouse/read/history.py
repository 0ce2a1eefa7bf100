"""The table's snapshots, for readers that pin one (``events(snapshot_id=...)``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lakehouse import summary as summary_names
from lakehouse.settings import Settings
from lakehouse.tables import open_events_table

if TYPE_CHECKING:
    import polars as pl
    from pyiceberg.table import Table

# ``lakehouse.kind`` values written by maintenance, and operations only maintenance uses.
MAINTENANCE_KINDS = summary_names.MAINTENANCE_KINDS
MAINTENANCE_OPERATIONS = frozenset({"replace"})

SNAPSHOT_COLUMNS = (
    "snapshot_id",
    "parent_id",
    "committed_at",
    "operation",
    "kind",
    "category",
    "added_records",
    "total_records",
    "added_files",
    "late_hours",
    "is_current",
    "complete",
)


def category(kind: str | None, operation: str | None) -> str:
    """``on-time``, ``late``, ``maintenance`` or ``other`` for a snapshot."""
    if kind in summary_names.WRITER_KINDS:
        return kind
    if kind in MAINTENANCE_KINDS or operation in MAINTENANCE_OPERATIONS:
        return "maintenance"
    return "other"


def _int(summary: dict[str, str], key: str) -> int | None:
    value = summary.get(key)
    return int(value) if value not in (None, "") else None


def snapshot_rows(table: Table) -> list[dict[str, Any]]:
    """One dict per snapshot in the table's metadata, oldest first."""
    from datetime import UTC

    from lakehouse import schema as spec

    snaps = table.inspect.snapshots().to_pylist()
    current = table.metadata.current_snapshot_id
    # A batch with on-time and late rows is one commit of two snapshots; the first alone
    # is half a batch: not a state to pin (``complete`` is False for it).
    keys = {s["snapshot_id"]: dict(s["summary"] or []).get(spec.SUMMARY_BATCH_KEY) for s in snaps}
    halves = {
        s["parent_id"]
        for s in snaps
        if s["parent_id"] is not None
        and keys[s["snapshot_id"]] is not None
        and keys.get(s["parent_id"]) == keys[s["snapshot_id"]]
    }
    rows = []
    for s in snaps:
        summary = dict(s["summary"] or [])
        kind = summary.get(spec.SUMMARY_KIND)
        late = summary.get(spec.SUMMARY_LATE_HOURS) or ""
        rows.append(
            {
                "snapshot_id": s["snapshot_id"],
                "parent_id": s["parent_id"],
                "committed_at": s["committed_at"].replace(tzinfo=UTC),
                "operation": s["operation"],
                "kind": kind,
                "category": category(kind, s["operation"]),
                "added_records": _int(summary, "added-records"),
                "total_records": _int(summary, "total-records"),
                "added_files": _int(summary, "added-data-files"),
                "late_hours": [h for h in late.split(",") if h],
                "is_current": s["snapshot_id"] == current,
                "complete": s["snapshot_id"] not in halves,
            }
        )
    rows.sort(key=lambda r: (r["committed_at"], r["snapshot_id"]))
    return rows


def snapshot_frame(table: Table) -> pl.DataFrame:
    import polars as pl

    return pl.DataFrame(
        snapshot_rows(table),
        schema={
            "snapshot_id": pl.Int64,
            "parent_id": pl.Int64,
            "committed_at": pl.Datetime("ms", "UTC"),
            "operation": pl.String,
            "kind": pl.String,
            "category": pl.String,
            "added_records": pl.Int64,
            "total_records": pl.Int64,
            "added_files": pl.Int64,
            "late_hours": pl.List(pl.String),
            "is_current": pl.Boolean,
            "complete": pl.Boolean,
        },
    )


def snapshots(settings: Settings | None = None) -> pl.DataFrame:
    """Every snapshot of the events table, oldest first.

    Columns: ``snapshot_id``, ``parent_id``, ``committed_at`` (UTC), ``operation``
    (append / overwrite / replace / delete), ``kind`` (the ``lakehouse.kind`` summary:
    ``on-time``, ``late``, ``compaction``, ...; null when another tool committed it),
    ``category`` (``on-time`` / ``late`` / ``maintenance`` / ``other``),
    ``added_records``, ``total_records``, ``added_files``, ``late_hours`` (the hour
    partitions a late snapshot wrote into, ``YYYY-MM-DDTHH``), ``is_current``,
    ``complete`` (False for the on-time half of a batch committed as on-time + late
    snapshots in one commit: pinning it would show the batch without its late rows).
    """
    return snapshot_frame(open_events_table(settings))


def current_snapshot_id(settings: Settings | None = None) -> int | None:
    """The id of the events table's current snapshot (None before the first commit).
    Pass it to ``events(snapshot_id=...)`` to keep reading exactly this state."""
    return open_events_table(settings).metadata.current_snapshot_id
