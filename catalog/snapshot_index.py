"""Snapshot lookup by id in constant time.

pyiceberg 0.12's ``TableMetadata.snapshot_by_id`` scans the snapshot list, and it is
called many times per commit (``current_snapshot()``, the snapshot producer's parent,
the ref update, the writer's duplicate check): with 2,000 retained snapshots that was
19 ms of a micro-batch commit (measured under load), growing with every snapshot kept.
:func:`install` replaces the method with one that indexes each metadata object's snapshot
list once. Table metadata models are frozen and pyiceberg replaces their lists (never
mutates them) when it applies an update, so an index stays valid for the object it was
built for; it is checked against the list it was built from anyway (same list object,
same length) and rebuilt when they differ. The index of a new version that extends the
last one indexed is a copy of that one plus the new snapshots.
``tests/catalog/test_snapshot_index.py`` pins the behaviour against pyiceberg's own.
"""

from __future__ import annotations

import operator
import threading
import weakref
from typing import Any

from pyiceberg.table.metadata import TableMetadataCommonFields
from pyiceberg.table.snapshots import Snapshot

_SCAN = TableMetadataCommonFields.snapshot_by_id  # pyiceberg's own, kept for misses
_MIN_INDEXED = 16  # below this a scan is as fast as a dict

# id(metadata) -> (snapshot list the index was built from, its length, id -> snapshot)
_INDEX: dict[int, tuple[list[Snapshot], int, dict[int, Snapshot]]] = {}
# table uuid -> the last index built for that table's metadata (to extend)
_LAST: dict[Any, tuple[list[Snapshot], int, dict[int, Snapshot]]] = {}
_LOCK = threading.Lock()


def _forget(key: int) -> None:
    with _LOCK:
        _INDEX.pop(key, None)


def _index_of(metadata: Any) -> dict[int, Snapshot]:
    snapshots = metadata.snapshots
    key = id(metadata)
    entry = _INDEX.get(key)
    if entry is not None and entry[0] is snapshots and entry[1] == len(snapshots):
        return entry[2]
    # A new version's list is usually the last indexed one plus new snapshots (pyiceberg
    # builds it so): copy that index (a C-speed copy) instead of building one.
    table = metadata.table_uuid
    last = _LAST.get(table)
    if (
        last is not None
        and len(snapshots) >= last[1]
        and all(map(operator.is_, snapshots, last[0]))
    ):
        index = last[2].copy()
        for snap in snapshots[last[1] :]:
            index[snap.snapshot_id] = snap
    else:
        index = {s.snapshot_id: s for s in snapshots}
    with _LOCK:
        if key not in _INDEX:  # the object is new to the index: drop its entry with it
            weakref.finalize(metadata, _forget, key)
        _INDEX[key] = _LAST[table] = (snapshots, len(snapshots), index)
    return index


def snapshot_by_id(self: Any, snapshot_id: int) -> Snapshot | None:
    """``TableMetadata.snapshot_by_id``, through a per-object index."""
    if len(self.snapshots) < _MIN_INDEXED:
        return _SCAN(self, snapshot_id)
    return _index_of(self).get(snapshot_id)


def install() -> None:
    """Use the indexed lookup for every table metadata object (idempotent)."""
    TableMetadataCommonFields.snapshot_by_id = snapshot_by_id  # type: ignore[method-assign]


def indexed_objects() -> int:
    """How many metadata objects hold an index (for tests)."""
    return len(_INDEX)
