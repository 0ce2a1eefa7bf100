"""Commit a rewrite with the conflict rules of Iceberg's Java ``RewriteFiles``.

A rewrite that only reorganises data commits a true ``replace`` snapshot (row totals
unchanged; incremental readers skip it), one that dropped duplicates an ``overwrite``
(:func:`catalog.producers.commit_file_rewrite`). The conflict check keeps the
``RewriteFiles`` rules (:class:`ConflictChecker`): the rewritten files must still exist
and no new delete file may apply to them. Concurrent appends, even into the very hour
being rewritten, are kept: the commit is rebuilt on the new head and retried
(:func:`catalog.commit.commit_with_retries`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pyiceberg.exceptions import ValidationException
from pyiceberg.io import FileIO
from pyiceberg.manifest import DataFile, ManifestContent, ManifestEntryStatus
from pyiceberg.table import Table
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.snapshots import Operation, Snapshot, ancestors_of

from catalog.commit import Conflict, RetryPolicy, commit_with_retries
from catalog.producers import ManifestEntryCache, commit_file_rewrite
from maintenance.errors import RewriteConflictError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _SnapshotChanges:
    deleted_paths: frozenset[str]
    delete_file_partitions: frozenset[tuple[int, tuple[Any, ...]]]


class ConflictChecker:
    """RewriteFiles validation for the groups of one plan, incremental over a run.

    A group conflicts when a snapshot committed after the plan's base, other than this
    run's own rewrites (which touch other groups' files), deleted one of its files or
    added a delete file in one of its partitions. What each snapshot changed is read once
    and kept, so validating the k-th group does not re-read the first k-1 commits; the
    live entries of the manifests the run's commits rewrite are kept too (:attr:`entries`),
    so each manifest is read once per run, not once per commit.
    """

    def __init__(self, io: FileIO, base_snapshot_id: int | None) -> None:
        self.io = io
        self.base_snapshot_id = base_snapshot_id
        self.own: set[int] = set()
        self.entries = ManifestEntryCache()
        self._changes: dict[int, _SnapshotChanges] = {}

    def check(
        self, metadata: TableMetadata, head_id: int | None, files: Iterable[DataFile]
    ) -> None:
        paths = {f.file_path for f in files}
        partitions = {_partition(f) for f in files}
        head = metadata.snapshot_by_id(head_id) if head_id is not None else None
        for snapshot in ancestors_of(head, metadata):
            if snapshot.snapshot_id == self.base_snapshot_id:
                return
            if snapshot.snapshot_id in self.own:
                continue
            changes = self._read(snapshot)
            if gone := changes.deleted_paths & paths:
                raise ValidationException(
                    f"Data files were concurrently deleted by snapshot {snapshot.snapshot_id}: {sorted(gone)}"
                )
            if changes.delete_file_partitions & partitions:
                raise ValidationException(
                    f"Snapshot {snapshot.snapshot_id} added delete files that may apply to rewritten files"
                )
        if self.base_snapshot_id is not None:
            raise ValidationException(
                f"Snapshot {self.base_snapshot_id} is no longer an ancestor of the head"
            )

    def _read(self, snapshot: Snapshot) -> _SnapshotChanges:
        if snapshot.snapshot_id in self._changes:
            return self._changes[snapshot.snapshot_id]
        deleted: set[str] = set()
        delete_partitions: set[tuple[int, tuple[Any, ...]]] = set()
        operation = snapshot.summary.operation if snapshot.summary else None
        if operation != Operation.APPEND:
            for manifest in snapshot.manifests(self.io):
                if manifest.added_snapshot_id != snapshot.snapshot_id:
                    continue
                for entry in manifest.fetch_manifest_entry(self.io, discard_deleted=False):
                    if entry.snapshot_id != snapshot.snapshot_id:
                        continue
                    if (
                        manifest.content == ManifestContent.DATA
                        and entry.status == ManifestEntryStatus.DELETED
                    ):
                        deleted.add(entry.data_file.file_path)
                    elif (
                        manifest.content == ManifestContent.DELETES
                        and entry.status == ManifestEntryStatus.ADDED
                    ):
                        delete_partitions.add(_partition(entry.data_file))
        changes = _SnapshotChanges(frozenset(deleted), frozenset(delete_partitions))
        self._changes[snapshot.snapshot_id] = changes
        return changes


def _partition(data_file: DataFile) -> tuple[int, tuple[Any, ...]]:
    record = data_file.partition
    return data_file.spec_id, tuple(record[i] for i in range(len(record)))


def commit_rewrite(
    table: Table,
    removed: Iterable[DataFile],
    added: Iterable[DataFile],
    *,
    base_snapshot_id: int | None,
    replace: bool,
    properties: Mapping[str, str] | None = None,
    checker: ConflictChecker | None = None,
    policy: RetryPolicy | None = None,
) -> Snapshot:
    """Commit one rewrite on ``table`` (refreshed to the newest state it knows).

    ``base_snapshot_id`` is the snapshot the rewrite read (the plan's): concurrent
    changes since then are validated before each attempt and again on each of
    pyiceberg's rebuilds. A lost race is committed again on the new head (the project's
    commit retry policy). Raises :class:`RewriteConflictError` when a concurrent change
    touched the removed files (nothing committed) and
    :class:`~catalog.commit.CommitConflictError` when the catalog kept refusing.
    """
    removed, added = list(removed), list(added)
    validator = checker or ConflictChecker(table.io, base_snapshot_id)

    def attempt(_: int) -> Snapshot:
        return commit_file_rewrite(
            table,
            removed,
            added,
            base_snapshot_id=validator.base_snapshot_id,
            replace=replace,
            validator=validator,
            properties=properties,
            entries=validator.entries,
        )

    try:
        snapshot = commit_with_retries(
            table, attempt, what="a rewrite", policy=policy, retry_on={Conflict.LOST_RACE}
        )
    except ValidationException as exc:
        raise RewriteConflictError(f"rewrite conflicts with a concurrent change: {exc}") from exc
    validator.own.add(snapshot.snapshot_id)
    return snapshot
