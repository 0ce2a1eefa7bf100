"""An oracle for expiry and orphan removal that shares no code with them.

It reads a table's ``metadata.json`` as JSON, each snapshot's manifest list and each
manifest as Avro (fastavro), and returns every file the table can reach: the metadata
files (current, metadata log, statistics), the manifest lists of every retained
snapshot, their manifests, and the data and delete files those manifests list as live
(status ADDED or EXISTING; an entry marked DELETED is history, not a readable file).
``files_under`` lists what is on disk. Nothing here imports ``maintenance``,
``catalog``, ``writers`` or pyiceberg: a bug in the walk that picks the files to delete
cannot hide itself by grading its own work.

Local warehouses only (``file://`` URIs or bare paths), which is what the tests use.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fastavro

ICEBERG_SUFFIXES = (".parquet", ".orc", ".avro", ".metadata.json", ".metadata.json.gz", ".puffin")
_DELETED = 2  # manifest entry status: 0 EXISTING, 1 ADDED, 2 DELETED (Iceberg spec)


def local(location: str) -> str:
    """``file:///a/b`` and ``file:/a/b`` -> ``/a/b``; a bare path stays as it is."""
    if location.startswith("file://"):
        return location[len("file://") :]
    if location.startswith("file:"):
        return location[len("file:") :]
    if "://" in location:
        raise ValueError(f"the oracle reads local tables only, not {location!r}")
    return location


def _avro(path: str) -> list[dict[str, Any]]:
    with open(local(path), "rb") as f:
        return list(fastavro.reader(f))


def _avro_or_none(path: str, missing: set[str]) -> list[dict[str, Any]] | None:
    try:
        return _avro(path)
    except FileNotFoundError:  # a table that lost a file: the walk says so, goes on
        missing.add(local(path))
        return None


@dataclass
class Reachable:
    """What a table's metadata reaches, by kind (local paths)."""

    metadata_files: set[str] = field(default_factory=set)
    manifest_lists: set[str] = field(default_factory=set)
    manifests: set[str] = field(default_factory=set)
    data_files: set[str] = field(default_factory=set)  # live data and delete files
    by_snapshot: dict[int, set[str]] = field(default_factory=dict)  # live data files
    unreadable: set[str] = field(default_factory=set)  # manifest lists/manifests not found

    @property
    def all(self) -> set[str]:
        return self.metadata_files | self.manifest_lists | self.manifests | self.data_files


def read_metadata(metadata_location: str) -> dict[str, Any]:
    with open(local(metadata_location), "rb") as f:
        data: dict[str, Any] = json.load(f)
    return data


def reachable(metadata_location: str) -> Reachable:
    """Every file the table's metadata at ``metadata_location`` reaches."""
    meta = read_metadata(metadata_location)
    out = Reachable()
    out.metadata_files.add(local(metadata_location))
    out.metadata_files.update(local(e["metadata-file"]) for e in meta.get("metadata-log", []))
    for key in ("statistics", "partition-statistics"):
        out.metadata_files.update(local(s["statistics-path"]) for s in meta.get(key, []))
    live_of: dict[str, set[str]] = {}
    for snapshot in meta.get("snapshots", []):
        manifest_list = local(snapshot["manifest-list"])
        out.manifest_lists.add(manifest_list)
        files: set[str] = set()
        for manifest in _avro_or_none(manifest_list, out.unreadable) or []:
            path = local(manifest["manifest_path"])
            out.manifests.add(path)
            if path not in live_of:
                live_of[path] = {
                    local(entry["data_file"]["file_path"])
                    for entry in _avro_or_none(path, out.unreadable) or []
                    if entry["status"] != _DELETED
                }
            files |= live_of[path]
        out.by_snapshot[int(snapshot["snapshot-id"])] = files
        out.data_files |= files
    return out


def files_under(location: str, suffixes: Iterable[str] | None = None) -> set[str]:
    """Every file under a local table location (only Iceberg kinds, if ``suffixes``)."""
    ends = tuple(suffixes) if suffixes is not None else None
    found = set()
    for folder, _, names in os.walk(local(location)):
        for name in names:
            if ends is None or name.endswith(ends):
                found.add(str(Path(folder) / name))
    return found


def unreachable_files(metadata_location: str, location: str) -> set[str]:
    """Iceberg files under the table location that its metadata does not reach."""
    return files_under(location, ICEBERG_SUFFIXES) - reachable(metadata_location).all


def missing_files(metadata_location: str) -> set[str]:
    """Files the metadata reaches that are not on disk (a table that lost files)."""
    reach = reachable(metadata_location)
    return reach.unreadable | {p for p in reach.all if not os.path.exists(p)}
