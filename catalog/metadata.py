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
