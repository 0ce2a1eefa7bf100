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
from typing import Any

from pyiceberg.exceptions import CommitFailedException, ValidationException
from pyiceberg.manifest import (
    DataFile,
    DataFileContent,
    ManifestEntry,
    ManifestEntryStatus,
    ManifestFile,
)
from pyiceberg.table import Table
from pyiceberg.table.refs import MAIN_BRANCH
from pyiceberg.table.snapshots import Operation, Snapshot, Summary
from pyiceberg.table.update.snapshot import CommitWindow, _OverwriteFiles
from pyiceberg.table.update.validate import (
    _validate_data_files_exist,
    _validate_no_new_deletes_for_data_files,
)
from pyiceberg.typedef import EMPTY_DICT, KeyDefaultDict

from lakehouse.errors import CommitError
from maintenance.errors import RewriteConflictError

log = logging.getLogger(__name__)


def relabel(summary: Summary, operation: Operation) -> Summary:
    """The same summary under another operation (pyiceberg computes totals only for
    append/overwrite/delete; a rewrite's totals are those of an overwrite)."""
    return Summary(operation, **summary.additional_properties)


class _RewriteFiles(_OverwriteFiles):
    """Swap data files for their rewrite: ``replace`` (or ``overwrite``) with RewriteFiles
    validation.

    Built to win commit races against busy writers: every attempt after a lost race must
    finish before the next writer commit lands, so manifests (immutable) are read once
    and cached across attempts, and validation only covers the snapshots that are new
    since the last attempt validated.
    """

    _label: Operation = Operation.REPLACE
    _validated_head: int | None = None
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
        base = window.base
        if self._validated_head is not None:
            base = table.metadata.snapshot_by_id(self._validated_head) or base
        if base is not None and base.snapshot_id == window.head.snapshot_id:
            return
        _validate_data_files_exist(table, window.head, self._deleted_data_files, base)
        _validate_no_new_deletes_for_data_files(
            table, window.head, None, self._deleted_data_files, base
        )
        self._validated_head = window.head.snapshot_id

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
    for round_ in range(1, rounds + 1):
        try:
            return _commit_once(table, removed, added, base_snapshot_id, replace, properties)
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
    base_snapshot_id: int | None,
    replace: bool,
    properties: Mapping[str, str] | None,
) -> Snapshot:
    txn = table.transaction()
    producer = _RewriteFiles(
        operation=Operation.OVERWRITE,
        transaction=txn,
        io=table.io,
        snapshot_properties=dict(properties or {}),
    )
    producer._label = Operation.REPLACE if replace else Operation.OVERWRITE
    for data_file in removed:
        producer.delete_data_file(data_file)
    for data_file in added:
        producer.append_data_file(data_file)
    # The validation window starts where the rewrite read, not where this handle is.
    producer._starting_snapshot_id = base_snapshot_id
    producer._commit_window = CommitWindow.resolve(table.metadata, base_snapshot_id, MAIN_BRANCH)
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
