"""Expire old snapshots, then delete the files only they could read.

pyiceberg's ``expire_snapshots`` edits metadata only. Here, after the metadata commit,
the data files, manifests and manifest lists reachable from the expired snapshots and
from no retained snapshot (of any branch or tag) are deleted, and so are metadata files
older than every one the table's metadata log still lists. A retained snapshot never
loses a file it can read: the retained set is computed from the metadata *after* the
commit, so snapshots committed concurrently are retained too.
"""

from __future__ import annotations

import logging
import posixpath
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from pyiceberg.io import FileIO
from pyiceberg.manifest import ManifestEntryStatus, ManifestFile
from pyiceberg.table import Table
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.refs import SnapshotRefType
from pyiceberg.table.snapshots import Snapshot, ancestors_of
from pyiceberg.utils.datetime import datetime_to_millis

from catalog.commit import commit_with_retries
from catalog.entries import manifest_entries
from lakehouse import faults
from lakehouse.errors import UsageError
from maintenance.paths import DeleteFn, canonical, delete_all, io_delete, list_files
from maintenance.results import ExpiryResult

log = logging.getLogger(__name__)

DEFAULT_RETENTION = timedelta(days=5)
_METADATA_NAME = re.compile(r"^(\d+)-[^/]*\.metadata\.json(\.gz)?$")


def snapshots_to_expire(
    metadata: TableMetadata, *, older_than: datetime, retain_last: int
) -> set[int]:
    """Snapshots older than ``older_than`` that no ref protects. Every branch keeps its
    last ``retain_last`` ancestors (or its own ``min-snapshots-to-keep``); tags keep theirs."""
    if retain_last < 1:
        raise UsageError("retain_last must be at least 1 (the current snapshot is always kept)")
    protected: set[int] = set()
    for ref in metadata.refs.values():
        if ref.snapshot_ref_type == SnapshotRefType.TAG:
            protected.add(ref.snapshot_id)
            continue
        keep = max(retain_last, ref.min_snapshots_to_keep or 0)
        head = metadata.snapshot_by_id(ref.snapshot_id)
        for index, snapshot in enumerate(ancestors_of(head, metadata)):
            if index >= keep:
                break
            protected.add(snapshot.snapshot_id)
    cutoff = datetime_to_millis(older_than)
    return {
        s.snapshot_id
        for s in metadata.snapshots
        if s.timestamp_ms < cutoff and s.snapshot_id not in protected
    }


@dataclass
class Reach:
    """Files reachable from a set of snapshots (locations as written in metadata)."""

    manifest_lists: dict[str, str] = field(default_factory=dict)  # canonical -> location
    manifests: dict[str, str] = field(default_factory=dict)
    live_files: dict[str, str] = field(default_factory=dict)  # data and delete files


class ReachCache:
    """Reads each manifest once, however many snapshots share it, and takes its files
    once per :meth:`reach` (a table with a snapshot a minute shares most manifests
    between thousands of snapshots)."""

    def __init__(self, io: FileIO) -> None:
        self.io = io
        # manifest -> ({canonical: location} of its live entries,
        #              {canonical: (location, id of the snapshot that removed it)} of the
        #              DELETED ones)
        self._entries: dict[str, tuple[dict[str, str], dict[str, tuple[str, int | None]]]] = {}

    def _files(
        self, manifest: ManifestFile
    ) -> tuple[dict[str, str], dict[str, tuple[str, int | None]]]:
        key = canonical(manifest.manifest_path)
        found = self._entries.get(key)
        if found is None:
            live: dict[str, str] = {}
            deleted: dict[str, tuple[str, int | None]] = {}
            for e in manifest_entries(manifest, self.io):
                path = e.data_file.file_path
                if e.status == ManifestEntryStatus.DELETED:
                    deleted[canonical(path)] = (path, e.snapshot_id)
                else:
                    live[canonical(path)] = path
            found = self._entries[key] = (live, deleted)
        return found

    @property
    def manifests_read(self) -> int:
        return len(self._entries)

    def reach(self, snapshots: list[Snapshot]) -> Reach:
        out = Reach()
        for snapshot in snapshots:
            out.manifest_lists[canonical(snapshot.manifest_list)] = snapshot.manifest_list
            for manifest in snapshot.manifests(self.io):
                key = canonical(manifest.manifest_path)
                if key in out.manifests:
                    continue  # its files are in already
                out.manifests[key] = manifest.manifest_path
                out.live_files.update(self._files(manifest)[0])
        return out

    def reach_line(self, line: list[Snapshot]) -> Reach:
        """What :meth:`reach` gives for ``line``, one line of history from its head
        (``line[0]``) back, each snapshot the parent of the one before, reading fewer
        manifests: a file some snapshot of the line can read is either live in the head
        or was removed by a later snapshot of the line, and a snapshot records each file
        it removes as a DELETED entry of a manifest it lists (the Iceberg spec; Iceberg's
        own incremental expiry relies on it). So the head's manifests are read, and of
        the others' only those that count deleted files; the rest are only named. A
        DELETED entry counts when the snapshot that removed the file has its parent in
        the line (which could read the file); an entry without a snapshot id counts."""
        removers = {s.snapshot_id for s in line[:-1]}  # each has its parent in the line
        out = Reach()
        for index, snapshot in enumerate(line):
            out.manifest_lists[canonical(snapshot.manifest_list)] = snapshot.manifest_list
            for manifest in snapshot.manifests(self.io):
                key = canonical(manifest.manifest_path)
                if key in out.manifests:
                    continue  # read or named already
                out.manifests[key] = manifest.manifest_path
                removes = manifest.deleted_files_count != 0  # None (unknown) reads it
                if index == 0 or removes:
                    live, deleted = self._files(manifest)
                    out.live_files.update(live)
                    out.live_files.update(
                        (name, path)
                        for name, (path, by) in deleted.items()
                        if by is None or by in removers
                    )
        return out


def history_line(metadata: TableMetadata) -> list[Snapshot] | None:
    """The table's snapshots from the head back, when they are one line of history: one
    branch and no tag, and walking back from its head meets every snapshot. None
    otherwise (or when the table has no snapshot)."""
    refs = list(metadata.refs.values())
    if len(refs) != 1 or refs[0].snapshot_ref_type != SnapshotRefType.BRANCH:
        return None
    by_id = {s.snapshot_id: s for s in metadata.snapshots}
    line: list[Snapshot] = []
    current = by_id.get(refs[0].snapshot_id)
    while current is not None and len(line) <= len(by_id):
        line.append(current)
        parent = current.parent_snapshot_id
        current = by_id.get(parent) if parent is not None else None
    if len(line) != len(by_id) or len({s.snapshot_id for s in line}) != len(by_id):
        return None
    return line


def expire_snapshots(
    table: Table,
    *,
    retention: timedelta = DEFAULT_RETENTION,
    retain_last: int = 1,
    now: datetime | None = None,
    dry_run: bool = False,
    delete: DeleteFn | None = None,
) -> ExpiryResult:
    """Expire snapshots older than ``retention`` (keeping ``retain_last`` per branch) and
    delete the files no retained snapshot references. ``dry_run`` commits and deletes nothing."""
    now = now or datetime.now(UTC)
    delete = delete or io_delete(table.io)
    before, expired_ids = _commit_expiry(table, now - retention, retain_last, dry_run)
    after = (
        [s for s in before.snapshots if s.snapshot_id not in expired_ids]
        if dry_run
        else table.metadata.snapshots
    )
    kept_ids = {s.snapshot_id for s in after}
    gone = [s for s in before.snapshots if s.snapshot_id not in kept_ids]
    cache = ReachCache(table.io)
    expired = cache.reach(gone)
    now_metadata = before if dry_run else table.metadata
    retained = cache.reach(_must_read(now_metadata, before, list(after), gone))
    data = [loc for key, loc in expired.live_files.items() if key not in retained.live_files]
    manifests = [loc for key, loc in expired.manifests.items() if key not in retained.manifests]
    lists = [
        loc for key, loc in expired.manifest_lists.items() if key not in retained.manifest_lists
    ]
    metadata_files = _old_metadata_files(
        table.metadata if not dry_run else before, table.metadata_location, table.io
    )
    groups = (data, manifests, lists, metadata_files)
    if dry_run:
        counts = [len(g) for g in groups]
        failures = 0
    else:
        counts, failures = [], 0
        faults.point("expire.committed")
        for locations in groups:  # data first: a crash never leaves a manifest without its files
            done, failed = delete_all(locations, delete)
            counts.append(done)
            failures += failed
            faults.point("expire.group-deleted")
    log.info(
        "expired %s snapshots; deleted %s files (%s failures)", len(gone), sum(counts), failures
    )
    return ExpiryResult(
        snapshots_expired=len(gone),
        data_files_deleted=counts[0],
        manifests_deleted=counts[1],
        manifest_lists_deleted=counts[2],
        metadata_files_deleted=counts[3],
        files_deleted=sum(counts),
        delete_failures=failures,
        dry_run=dry_run,
        expired_snapshot_ids=tuple(sorted(s.snapshot_id for s in gone)),
        deleted_paths=tuple(loc for g in groups for loc in g) if dry_run else (),
    )


def _must_read(
    now: TableMetadata, before: TableMetadata, after: list[Snapshot], gone: list[Snapshot]
) -> list[Snapshot]:
    """The retained snapshots whose files must be read to know which files of ``gone``
    are still referenced: none when nothing expired. When the table is one line of
    history (one branch, no tag; walking back from the head meets every retained snapshot
    and then every expired one), only the oldest retained snapshot: a later one
    references a file of an expired snapshot only through it (a snapshot's manifests are
    its parent's, less some, plus new ones). Otherwise all of them. This keeps expiry's
    cost with what it expires, not with the history it retains."""
    if not gone:
        return []
    refs = list(now.refs.values())
    if len(refs) != 1 or refs[0].snapshot_ref_type != SnapshotRefType.BRANCH:
        return after
    # before the expiry (the oldest kept may have lost its parent link in the new metadata)
    parents = {s.snapshot_id: s.parent_snapshot_id for s in (*after, *before.snapshots)}
    line: list[int] = []
    seen: set[int] = set()
    current: int | None = refs[0].snapshot_id
    while current is not None and current in parents and current not in seen:
        line.append(current)
        seen.add(current)
        current = parents[current]
    kept = {s.snapshot_id for s in after}
    split = next((i for i, sid in enumerate(line) if sid not in kept), len(line))
    if not split or set(line[:split]) != kept or set(line[split:]) != {s.snapshot_id for s in gone}:
        return after
    oldest = next(s for s in after if s.snapshot_id == line[split - 1])
    return [oldest]


def _commit_expiry(
    table: Table, older_than: datetime, retain_last: int, dry_run: bool
) -> tuple[TableMetadata, set[int]]:
    """Commit the expiry (computed again from the new head after a lost race); returns
    the metadata it was computed from and the ids it expired."""

    def attempt(_: int) -> tuple[TableMetadata, set[int]]:
        before = table.metadata
        ids = snapshots_to_expire(before, older_than=older_than, retain_last=retain_last)
        if not ids or dry_run:
            return before, ids
        table.maintenance.expire_snapshots().by_ids(sorted(ids)).commit()
        table.refresh()
        return before, ids

    return commit_with_retries(table, attempt, what="snapshot expiry", refresh_first=True)


def _old_metadata_files(
    metadata: TableMetadata, current_location: str, io: FileIO | None = None
) -> list[str]:
    """Metadata files older than every file the metadata log keeps (never the current)."""
    kept = {
        canonical(current_location),
        *(canonical(e.metadata_file) for e in metadata.metadata_log),
    }
    versions = [_version(k) for k in kept]
    floor = (
        min(v for v in versions if v is not None) if any(v is not None for v in versions) else None
    )
    if floor is None:
        return []
    folder = posixpath.dirname(current_location)
    old = []
    for listed in list_files(folder, io):
        version = _version(listed.key)
        if version is not None and version < floor and listed.key not in kept:
            old.append(listed.location)
    return sorted(old)


def _version(location: str) -> int | None:
    match = _METADATA_NAME.match(posixpath.basename(location))
    return int(match.group(1)) if match else None
