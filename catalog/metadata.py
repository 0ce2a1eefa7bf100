"""Applying table-metadata updates without pyiceberg 0.12's full deep copy.

``pyiceberg.table.update.update_table_metadata`` ends with
``model_copy(deep=True)`` of the whole table metadata. Every transaction access and every
catalog commit pays it, and it grows with the number of snapshots: at 600 snapshots it
was 200 ms of a 280 ms commit (measured). The metadata models are frozen pydantic models
and pyiceberg replaces (never mutates) their lists when it applies an update, so the
result can share structure with its base. These helpers use pyiceberg's private update
functions; pyiceberg is pinned and ``tests/test_metadata_updates.py`` checks that the
results equal pyiceberg's own.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import datetime
from typing import Any

from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.update import (
    _apply_table_update,
    _TableMetadataUpdateContext,
    _update_table_metadata_log,
)
from pyiceberg.utils.datetime import datetime_to_millis


def apply_updates(
    base: TableMetadata, updates: tuple[Any, ...], *, metadata_location: str | None = None
) -> TableMetadata:
    """What ``update_table_metadata(base, updates, metadata_location=...)`` returns, without
    the deep copy."""
    context = _TableMetadataUpdateContext()
    metadata = base
    for update in updates:
        metadata = _apply_table_update(update, metadata, context)
    if context.has_changes():
        if metadata_location:
            metadata = _update_table_metadata_log(metadata, metadata_location, base.last_updated_ms)
        if base.last_updated_ms == metadata.last_updated_ms:
            now = datetime_to_millis(datetime.now().astimezone())
            metadata = metadata.model_copy(update={"last_updated_ms": now})
    metadata.spec().check_compatible(metadata.schema())
    metadata.sort_order().check_compatible(metadata.schema())
    return metadata


class MetadataCache:
    """Parsed table metadata by metadata-file location, most recently used kept.

    A metadata file is written once under a new, unique name and never changed, so the
    location names its content for good. Parsing ``metadata.json`` grows with the
    table's history (at 1,000 snapshots it was about 60 ms per load, twice per commit:
    the writer's refresh and the catalog's check before swapping the pointer); a
    process that loads the same version again, or commits it itself, reuses it.
    """

    def __init__(self, entries: int = 8) -> None:
        self.entries = entries
        self._items: OrderedDict[str, TableMetadata] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0

    def get(self, location: str) -> TableMetadata | None:
        with self._lock:
            found = self._items.get(location)
            if found is not None:
                self._items.move_to_end(location)
                self.hits += 1
            return found

    def put(self, location: str, metadata: TableMetadata) -> None:
        with self._lock:
            self._items[location] = metadata
            self._items.move_to_end(location)
            while len(self._items) > self.entries:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


METADATA_CACHE = MetadataCache()
