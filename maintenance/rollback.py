"""Roll the events table back to an earlier snapshot of its current history: the way
back when files of the newest snapshots are missing (see ``lakehouse check``).

:func:`repair_to` rolls back to the newest whole snapshot, expires the snapshots undone
(each misses files: none of them can be read) and drops the ingest-log rows of the
batches they held, so the next ``lakehouse ingest`` reads those landing files again."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from pyiceberg.expressions import In
from pyiceberg.table import Table
from pyiceberg.table.snapshots import ancestors_of

from lakehouse.errors import UsageError
from lakehouse.schema import SUMMARY_BATCH_KEY

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RollbackResult:
    table: str
    from_snapshot_id: int | None
    to_snapshot_id: int
    snapshots_undone: int  # snapshots of the history after the target, no longer current
    snapshots_expired: int = 0
    batches_to_reingest: tuple[str, ...] = ()  # their ingest-log rows were dropped

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["batches_to_reingest"] = list(self.batches_to_reingest)
        return out


def rollback_to(table: Table, snapshot_id: int) -> RollbackResult:
    """Make ``snapshot_id`` (an ancestor of the current snapshot) current again."""
    current = table.metadata.current_snapshot()
    history = [s.snapshot_id for s in ancestors_of(current, table.metadata)] if current else []
    if snapshot_id not in history:
        raise UsageError(
            f"snapshot {snapshot_id} is not in the current history of "
            f"{'.'.join(table.name())}; `lakehouse snapshots` lists it"
        )
    undone = history.index(snapshot_id)
    if undone:
        table.manage_snapshots().rollback_to_snapshot(snapshot_id).commit()
        log.warning(
            "rolled %s back to snapshot %s (%s snapshots undone)",
            ".".join(table.name()),
            snapshot_id,
            undone,
        )
    return RollbackResult(
        ".".join(table.name()), current.snapshot_id if current else None, snapshot_id, undone
    )


def repair_to(table: Table, ingested: Table | None, snapshot_id: int) -> RollbackResult:
    """Roll back to ``snapshot_id``, expire the snapshots undone and drop the ingest-log
    rows of the batches only they held (see the module's docstring)."""
    current = table.metadata.current_snapshot()
    undone = []
    if current is not None:
        for snap in ancestors_of(current, table.metadata):
            if snap.snapshot_id == snapshot_id:
                break
            undone.append(snap)
    result = rollback_to(table, snapshot_id)
    if not undone:
        return result
    table.maintenance.expire_snapshots().by_ids([s.snapshot_id for s in undone]).commit()
    kept = {
        s.summary.get(SUMMARY_BATCH_KEY)
        for s in ancestors_of(table.metadata.current_snapshot(), table.metadata)
        if s.summary
    }
    keys = sorted(
        {
            k
            for s in undone
            if s.summary and (k := s.summary.get(SUMMARY_BATCH_KEY)) and k not in kept
        }
    )
    if keys and ingested is not None and ingested.current_snapshot() is not None:
        ingested.delete(In("batch_key", keys))  # type: ignore[call-arg,arg-type]  # pydantic signature
        log.warning("dropped the ingest-log rows of %s batches: ingest reads them again", len(keys))
    return RollbackResult(
        result.table,
        result.from_snapshot_id,
        snapshot_id,
        result.snapshots_undone,
        snapshots_expired=len(undone),
        batches_to_reingest=tuple(keys),
    )
