"""Commit a rewrite the way Iceberg's Java ``RewriteFiles`` does, through pyiceberg's
private snapshot producer (pyiceberg is pinned exactly; tests/maintenance/test_private_api.py
fails loudly when an upgrade breaks what this module relies on).

pyiceberg's public overwrite commits ``delete`` + ``append`` (incremental readers see
rewritten rows again) or an ``overwrite`` whose conflict check fails on any concurrent
append. Here:

* a rewrite that only reorganises data commits a true ``replace`` snapshot (row totals
  unchanged; incremental readers skip it), one that dropped duplicates an ``overwrite``;
* the conflict check keeps the ``RewriteFiles`` rules: the rewritten files must still
  exist and no new delete file may apply to them. Concurrent appends, even into the very
  hour being rewritten, are kept: the commit is rebuilt on the new head and retried.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pyiceberg.exceptions import CommitFailedException, ValidationException
from pyiceberg.io import FileIO
from pyiceberg.manifest import (
    DataFile,
    DataFileContent,
    ManifestContent,
    ManifestEntry,
    ManifestEntryStatus,
    ManifestFile,
)
from pyiceberg.table import Table, Transaction
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.refs import MAIN_BRANCH
from pyiceberg.table.snapshots import Operation, Snapshot, Summary, ancestors_of
from pyiceberg.table.update.snapshot import CommitWindow, _OverwriteFiles
from pyiceberg.typedef import EMPTY_DICT, KeyDefaultDict

from lakehouse.errors import CommitError
from maintenance.errors import RewriteConflictError

log = logging.getLogger(__name__)


def relabel(summary: Summary, operation: Operation) -> Summary:
    """The same summary under another operation (pyiceberg computes totals only for
    append/overwrite/delete; a rewrite's totals are those of an overwrite)."""
    return Summary(operation, **summary.additional_properties)


class LeanTransaction(Transaction):
    """A transaction whose ``table_metadata`` is not deep-copied while nothing is staged.

    pyiceberg 0.12 re-applies staged updates and deep-copies the whole metadata on every
    access; a snapshot producer reads it dozens of times, which with hundreds of
    snapshots dominated the time of a commit attempt (and so the odds of losing the race
    to a writer). Metadata models are replaced, never mutated, so sharing is safe.
    """

    @property
    def table_metadata(self) -> TableMetadata:
        if not self._updates:
            return self._table.metadata
        return super().table_metadata


@dataclass(frozen=True)
class _SnapshotChanges:
    deleted_paths: frozenset[str]
    delete_file_partitions: frozenset[tuple[int, tuple[Any, ...]]]


class ConflictChecker:
    """RewriteFiles validation for the groups of one plan, incremental over a run.

    A group conflicts when a snapshot committed after the plan's base, other than this
    run's own rewrites (which touch other groups' files), deleted one of its files or
    added a delete file in one of its partitions. What each snapshot changed is read once
    and kept, so validating the k-th group does not re-read the first k-1 commits.
    """

    def __init__(self, io: FileIO, base_snapshot_id: int | None) -> None:
        self.io = io
        self.base_snapshot_id = base_snapshot_id
        self.own: set[int] = set()
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


class _RewriteFiles(_OverwriteFiles):
    """Swap data files for their rewrite: ``replace`` (or ``overwrite``) with RewriteFiles
    validation (:class:`ConflictChecker`).

    Built to win commit races against busy writers: every attempt after a lost race must
    finish before the next writer commit lands, so manifests (immutable) are read once
    and cached across attempts, and validation only reads snapshots it has not seen.
    """

    _label: Operation = Operation.REPLACE
    _checker: ConflictChecker
    _entry_cache: dict[str, list[ManifestEntry]]

    def _entries(self, manifest: ManifestFile) -> list[ManifestEntry]:
        cache = self.__dict__.setdefault("_entry_cache", {})
        if manifest.manifest_path not in cache:
            cache[manifest.manifest_path] = manifest.fetch_manifest_entry(
                io=self._io, discard_deleted=True
            )
        return cache[manifest.manifest_path]  # type: ignore[no-any-return]

    def _summary(self, snapshot_properties: dict[str, str] = EMPTY_DICT) -> Summary:
        return relabel(super()._summary(snapshot_properties), self._label)

    def _validate_concurrency(self) -> None:
        window = self._commit_window
        if window is None or window.head is None:
            return
        table = self._transaction._table
        self._checker.check(table.metadata, window.head.snapshot_id, self._deleted_data_files)

    def _existing_manifests(self) -> list[ManifestFile]:
        """As pyiceberg's, reading each manifest once per producer."""
        existing: list[ManifestFile] = []
        evaluators: dict[int, Callable[[ManifestFile], bool]] = KeyDefaultDict(
            self._build_manifest_evaluator
        )
        head = self._transaction.table_metadata.snapshot_by_name(name=self._target_branch)
        if head is None:
            return existing
        for manifest in head.manifests(io=self._io):
            if not evaluators[manifest.partition_spec_id](manifest):
                existing.append(manifest)
                continue
            entries = self._entries(manifest)
            keep = [e for e in entries if e.data_file not in self._deleted_data_files]
            if len(keep) == len(entries):
                existing.append(manifest)
                continue
            if not keep:
                continue
            with self.new_manifest_writer(self.spec(manifest.partition_spec_id)) as writer:
                for entry in keep:
                    writer.existing(entry)
            existing.append(writer.to_manifest_file())
        return existing

    def _deleted_entries(self) -> list[ManifestEntry]:
        """As pyiceberg's, reading each manifest once per producer."""
        if self._parent_snapshot_id is None:
            return []
        parent = self._transaction.table_metadata.snapshot_by_id(self._parent_snapshot_id)
        if parent is None:
            raise ValueError(f"Could not find the previous snapshot: {self._parent_snapshot_id}")
        evaluators: dict[int, Callable[[ManifestFile], bool]] = KeyDefaultDict(
            self._build_manifest_evaluator
        )
        deleted = [
            ManifestEntry.from_args(
                status=ManifestEntryStatus.DELETED,
                snapshot_id=self._snapshot_id,
                sequence_number=entry.sequence_number,
                file_sequence_number=entry.file_sequence_number,
                data_file=entry.data_file,
            )
            for manifest in parent.manifests(self._io)
            if evaluators[manifest.partition_spec_id](manifest)
            for entry in self._entries(manifest)
            if entry.data_file.content == DataFileContent.DATA
            and entry.data_file in self._deleted_data_files
        ]
        self._validate_required_deletes(deleted)
        return deleted


def commit_rewrite(
    table: Table,
    removed: Iterable[DataFile],
    added: Iterable[DataFile],
    *,
    base_snapshot_id: int | None,
    replace: bool,
    properties: Mapping[str, str] | None = None,
    checker: ConflictChecker | None = None,
    rounds: int = 3,
) -> Snapshot:
    """Commit one rewrite on ``table`` (refreshed to the newest state it knows).

    ``base_snapshot_id`` is the snapshot the rewrite read (the plan's): concurrent
    changes since then are validated before the first attempt and again on each retry.
    Raises :class:`RewriteConflictError` when a concurrent change touched the removed
    files (nothing committed) and :class:`CommitError` when the catalog kept refusing
    (``rounds`` times pyiceberg's own ``commit.retry.num-retries``).
    """
    removed, added = list(removed), list(added)
    checker = checker or ConflictChecker(table.io, base_snapshot_id)
    for round_ in range(1, rounds + 1):
        try:
            snapshot = _commit_once(table, removed, added, checker, replace, properties)
            checker.own.add(snapshot.snapshot_id)
            return snapshot
        except CommitFailedException as exc:
            if round_ == rounds:
                raise CommitError(
                    f"rewrite commit kept losing races after {rounds} rounds: {exc}"
                ) from exc
            log.info("rewrite commit lost every retry of round %s; starting another", round_)
            table.refresh()
        except ValidationException as exc:
            raise RewriteConflictError(
                f"rewrite conflicts with a concurrent change: {exc}"
            ) from exc
    raise AssertionError("unreachable")  # pragma: no cover


def _commit_once(
    table: Table,
    removed: list[DataFile],
    added: list[DataFile],
    checker: ConflictChecker,
    replace: bool,
    properties: Mapping[str, str] | None,
) -> Snapshot:
    txn = LeanTransaction(table)
    producer = _RewriteFiles(
        operation=Operation.OVERWRITE,
        transaction=txn,
        io=table.io,
        snapshot_properties=dict(properties or {}),
    )
    producer._label = Operation.REPLACE if replace else Operation.OVERWRITE
    producer._checker = checker
    for data_file in removed:
        producer.delete_data_file(data_file)
    for data_file in added:
        producer.append_data_file(data_file)
    # The validation window starts where the rewrite read, not where this handle is.
    producer._starting_snapshot_id = checker.base_snapshot_id
    producer._commit_window = CommitWindow.resolve(
        table.metadata, checker.base_snapshot_id, MAIN_BRANCH
    )
    producer._validate_concurrency()
    producer.commit()
    txn.commit_transaction()
    snapshot = table.metadata.snapshot_by_id(producer.snapshot_id)
    if snapshot is None:  # pragma: no cover - the commit returned without our snapshot
        raise CommitError(
            f"committed snapshot {producer.snapshot_id} is missing from the table metadata"
        )
    return snapshot


def summary_counts(snapshot: Snapshot) -> dict[str, Any]:
    summary = snapshot.summary
    return {
        "operation": summary.operation.value if summary else None,
        **(summary.additional_properties if summary else {}),
    }
