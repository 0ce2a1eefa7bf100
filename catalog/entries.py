"""Decoded manifest entries, kept for the process by manifest path.

A manifest is never changed once written (its name is unique), and one maintenance run
reads the same ones again and again: planning reads the head's manifests, each commit
reads the ones it rewrites, orphan removal reads the head's again at the end. On a table
of 90 days the head holds a few large manifests of old hours that no job rewrites, and
decoding them (pyiceberg's Avro reader, about 50 us an entry) was done twice a run.

:func:`manifest_entries` returns every entry of a manifest (DELETED ones too), decoded
once; the entries are shared, so callers must not change them (none does: pyiceberg's
writers copy an entry before changing its status). The cache is bounded by entries
(:data:`MAX_ENTRIES`, a few KB each), least recently used manifest first out.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from pyiceberg.io import FileIO
from pyiceberg.manifest import ManifestEntry, ManifestEntryStatus, ManifestFile

MAX_ENTRIES = 20_000  # about 75 MB of decoded entries

_cache: OrderedDict[str, tuple[ManifestEntry, ...]] = OrderedDict()
_held = 0
_lock = threading.Lock()
stats = {"reads": 0, "hits": 0}


def manifest_entries(
    manifest: ManifestFile, io: FileIO, *, discard_deleted: bool = False
) -> list[ManifestEntry]:
    """The manifest's entries, as ``manifest.fetch_manifest_entry`` gives them."""
    global _held
    path = manifest.manifest_path
    with _lock:
        found = _cache.get(path)
        if found is not None:
            _cache.move_to_end(path)
            stats["hits"] += 1
    if found is None:
        found = tuple(manifest.fetch_manifest_entry(io, discard_deleted=False))
        with _lock:
            stats["reads"] += 1
            if path not in _cache and len(found) <= MAX_ENTRIES:
                _cache[path] = found
                _held += len(found)
                while _held > MAX_ENTRIES:
                    _, dropped = _cache.popitem(last=False)
                    _held -= len(dropped)
    if discard_deleted:
        return [e for e in found if e.status != ManifestEntryStatus.DELETED]
    return list(found)


def clear() -> None:
    """Forget every cached manifest (tests; a process that wants its memory back)."""
    global _held
    with _lock:
        _cache.clear()
        _held = 0
