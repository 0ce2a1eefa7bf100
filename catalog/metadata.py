"""Applying table-metadata updates without pyiceberg 0.12's full deep copy.

``pyiceberg.table.update.update_table_metadata`` ends with
``model_copy(deep=True)`` of the whole table metadata. Every transaction access and every
catalog commit pays it, and it grows with the number of snapshots: at 600 snapshots it
was 200 ms of a 280 ms commit (measured). The metadata models are frozen pydantic models
and pyiceberg replaces (never mutates) their lists when it applies an update, so the
result can share structure with its base. These helpers use pyiceberg's private update
functions; pyiceberg is pinned and ``tests/catalog/test_metadata_updates.py`` checks that the
results equal pyiceberg's own.
"""

from __future__ import annotations

import operator
import threading
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.snapshots import Snapshot
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


_SNAPSHOT_JSON: OrderedDict[tuple[str, int, bool], tuple[Snapshot, str]] = OrderedDict()
_SNAPSHOT_JSON_ENTRIES = 100_000
_SNAPSHOT_JSON_LOCK = threading.Lock()


class _ListJson:
    """The JSON of a list field's items (without the brackets) as last written for one
    table, kept with the item objects it was made from, so the next version of the list
    (the same objects plus new ones at the end, as pyiceberg builds it) costs only its
    new items."""

    __slots__ = ("items", "text")

    def __init__(self, items: list[Any], text: bytes) -> None:
        self.items = items
        self.text = text

    def extended(self, items: list[Any], dump: Callable[[Any], bytes]) -> _ListJson:
        old = self.items
        if items is old:
            return self
        if len(items) >= len(old) and all(map(operator.is_, items, old)):
            added = [dump(item) for item in items[len(old) :]]
            if not added:
                return _ListJson(items, self.text)
            text = b",".join([self.text, *added]) if old else b",".join(added)
            return _ListJson(items, text)
        return _ListJson(items, b",".join(dump(item) for item in items))


_LISTS: dict[tuple[str, str, bool], _ListJson] = {}
_LISTS_LOCK = threading.Lock()


def _snapshot_json(table: str, exclude_none: bool) -> Callable[[Snapshot], bytes]:
    """One snapshot's JSON, reused for an equal snapshot: a commit that pyiceberg retries
    after losing a race keeps its snapshot id but gets a new manifest list (and new
    totals), so the id alone does not name the content."""

    def dump(snapshot: Snapshot) -> bytes:
        key = (table, snapshot.snapshot_id, exclude_none)
        with _SNAPSHOT_JSON_LOCK:
            cached = _SNAPSHOT_JSON.get(key)
            if cached is not None and (cached[0] is snapshot or cached[0] == snapshot):
                return cached[1].encode()
        text = snapshot.model_dump_json(exclude_none=exclude_none)
        with _SNAPSHOT_JSON_LOCK:
            _SNAPSHOT_JSON[key] = (snapshot, text)
            if len(_SNAPSHOT_JSON) > _SNAPSHOT_JSON_ENTRIES:
                _SNAPSHOT_JSON.popitem(last=False)
        return text.encode()

    return dump


def _list_json(
    table: str, field: str, items: list[Any], exclude_none: bool, dump: Callable[[Any], bytes]
) -> bytes:
    key = (table, field, exclude_none)
    with _LISTS_LOCK:
        previous = _LISTS.get(key, _EMPTY)
    current = previous.extended(items, dump)
    with _LISTS_LOCK:
        _LISTS[key] = current
    return current.text


_EMPTY = _ListJson([], b"")


def metadata_json_bytes(metadata: TableMetadata, *, exclude_none: bool = True) -> bytes:
    """``metadata.model_dump_json(exclude_none=...)`` (UTF-8), without re-serialising
    what earlier versions of the table's metadata already held.

    ``metadata.json`` lists every retained snapshot and the snapshot log, so serialising
    it grew with history (about 1 KB per snapshot: 6.5 MB at 7,200 snapshots). A
    committed snapshot and a log entry never change, and pyiceberg builds each new
    version's lists as the old lists plus new items, so the JSON of both lists is kept
    per table and only the new items are serialised (a new version that is not an
    extension, such as after expiry, is serialised item by item, each snapshot's JSON
    still reused). The two lists come last in the object (JSON readers do not depend on
    key order); ``tests/catalog/test_metadata_updates.py`` and
    ``tests/catalog/test_metadata_json.py`` check the result parses to what pyiceberg's
    own serialisation parses to.
    """
    if not metadata.snapshots:
        return metadata.model_dump_json(exclude_none=exclude_none).encode()
    head = metadata.model_dump_json(
        exclude_none=exclude_none, exclude={"snapshots", "snapshot_log"}
    ).encode()
    table = metadata.table_uuid.hex
    snapshots = _list_json(
        table, "snapshots", metadata.snapshots, exclude_none, _snapshot_json(table, exclude_none)
    )
    log = _list_json(
        table,
        "snapshot-log",
        metadata.snapshot_log,
        exclude_none,
        lambda entry: entry.model_dump_json(exclude_none=exclude_none).encode(),
    )
    assert head.startswith(b"{") and head.endswith(b"}")
    separator = b"," if len(head) > 2 else b""
    return b"".join(
        (head[:-1], separator, b'"snapshot-log":[', log, b'],"snapshots":[', snapshots, b"]}")
    )


def metadata_json(metadata: TableMetadata, *, exclude_none: bool = True) -> str:
    """:func:`metadata_json_bytes` as text."""
    return metadata_json_bytes(metadata, exclude_none=exclude_none).decode()


def write_metadata(metadata: TableMetadata, io: Any, metadata_path: str) -> None:
    """What pyiceberg's ``ToOutputFile.table_metadata`` writes (compression included),
    serialised by :func:`metadata_json`."""
    from pyiceberg.serializers import Compressor
    from pyiceberg.utils.config import Config

    output = io.new_output(metadata_path)
    with output.create(overwrite=False) as stream:
        # pyiceberg's rule: keep None values for a legacy current-snapshot-id of -1
        exclude_none = not Config().get_bool("legacy-current-snapshot-id")
        data = metadata_json_bytes(metadata, exclude_none=exclude_none)
        stream.write(Compressor.get_compressor(output.location).bytes_compressor()(data))
