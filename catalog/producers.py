"""Snapshot producers for rewrites, built on pyiceberg's private snapshot producer classes
(pyiceberg is pinned exactly; tests/catalog/test_private_api.py fails loudly when an
upgrade breaks what this module relies on).

pyiceberg's public overwrite commits ``delete`` + ``append`` (incremental readers see
rewritten rows again) or an ``overwrite`` whose conflict check fails on any concurrent
append. Here:

* :func:`commit_file_rewrite` swaps data files for their rewrite the way Iceberg's Java
  ``RewriteFiles`` does: a true ``replace`` snapshot (row totals unchanged; incremental
  readers skip it) or an ``overwrite``, with the conflict check the caller supplies
  (:class:`FilesValidator`) instead of pyiceberg's;
* :func:`commit_manifest_rewrite` rewrites the head's data manifests into few manifests
  ordered by partition, as a ``replace`` snapshot that changes no data (Iceberg's
  ``RewriteManifests``).

Each function makes one attempt; :func:`catalog.commit.commit_with_retries` retries it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from pyiceberg.io import FileIO
from pyiceberg.manifest import (
    DataFile,
    DataFileContent,
    ManifestContent,
    ManifestEntry,
    ManifestEntryStatus,
    ManifestFile,
)
from pyiceberg.table import Table
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.refs import MAIN_BRANCH
from pyiceberg.table.snapshots import Operation, Snapshot, Summary
from pyiceberg.table.update.snapshot import CommitWindow, _OverwriteFiles, _SnapshotProducer
from pyiceberg.typedef import EMPTY_DICT, KeyDefaultDict

from catalog.entries import manifest_entries
from catalog.transaction import begin
from lakehouse.errors import CommitError


def relabel(summary: Summary, operation: Operation) -> Summary:
    """The same summary under another operation (pyiceberg computes totals only for
    append/overwrite/delete; a rewrite's totals are those of an overwrite)."""
    return Summary(operation, **summary.additional_properties)


class FilesValidator(Protocol):
    """The conflict check of a file rewrite: raise ``ValidationException`` when a commit
    after the rewrite's base, up to ``head_id``, conflicts with removing ``files``."""

    def check(
        self, metadata: TableMetadata, head_id: int | None, files: Iterable[DataFile]
    ) -> None: ...


class ManifestEntryCache:
    """The live entries of manifests, by path (a manifest never changes once written),
    shared by the commits of one compaction run: each manifest is read once per run,
    and a manifest a commit writes is known without reading it back."""

    def __init__(self) -> None:
        self._entries: dict[str, list[ManifestEntry]] = {}
        self.reads = 0

    def entries(self, manifest: ManifestFile, io: FileIO) -> list[ManifestEntry]:
        found = self._entries.get(manifest.manifest_path)
        if found is None:
            found = manifest_entries(manifest, io, discard_deleted=True)
            self._entries[manifest.manifest_path] = found
            self.reads += 1
        return found

    def remember(self, manifest: ManifestFile, entries: list[ManifestEntry]) -> None:
        """``manifest`` was just written with ``entries`` (all of them live)."""
        self._entries[manifest.manifest_path] = entries


class _RewriteFiles(_OverwriteFiles):
    """Swap data files for their rewrite: ``replace`` (or ``overwrite``), validated by a
    :class:`FilesValidator`.

    Built to win commit races against busy writers: every attempt after a lost race must
    finish before the next writer commit lands, so manifests (immutable) are read once
    and cached across attempts, and validation is the caller's incremental check.
    """

    _label: Operation = Operation.REPLACE
    _validator: FilesValidator
    _entry_cache: ManifestEntryCache

    def _entries(self, manifest: ManifestFile) -> list[ManifestEntry]:
        return self._entry_cache.entries(manifest, self._io)

    def _summary(self, snapshot_properties: dict[str, str] = EMPTY_DICT) -> Summary:
        return relabel(super()._summary(snapshot_properties), self._label)

    def _validate_concurrency(self) -> None:
        window = self._commit_window
        if window is None or window.head is None:
            return
        table = self._transaction._table
        self._validator.check(table.metadata, window.head.snapshot_id, self._deleted_data_files)

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
            written = writer.to_manifest_file()
            self._entry_cache.remember(written, keep)
            existing.append(written)
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


def commit_file_rewrite(
    table: Table,
    removed: Iterable[DataFile],
    added: Iterable[DataFile],
    *,
    base_snapshot_id: int | None,
    replace: bool,
    validator: FilesValidator,
    properties: Mapping[str, str] | None = None,
    entries: ManifestEntryCache | None = None,
) -> Snapshot:
    """One attempt to commit ``removed`` -> ``added`` on ``table`` (at the head it knows).

    The validation window starts at ``base_snapshot_id``, the snapshot the rewrite read:
    ``validator`` checks the commits since then before the attempt and again whenever
    pyiceberg rebuilds it after losing a race. Raises ``CommitFailedException`` when the
    catalog kept refusing, ``ValidationException`` on a conflict (nothing committed).
    """
    txn = begin(table)
    producer = _RewriteFiles(
        operation=Operation.OVERWRITE,
        transaction=txn,
        io=table.io,
        snapshot_properties=dict(properties or {}),
    )
    producer._label = Operation.REPLACE if replace else Operation.OVERWRITE
    producer._validator = validator
    producer._entry_cache = entries if entries is not None else ManifestEntryCache()
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


def _partition_key(entry: ManifestEntry) -> tuple[Any, ...]:
    partition = entry.data_file.partition
    values = [partition[i] for i in range(len(partition))]
    return (entry.data_file.spec_id, *((v is None, v) for v in values), entry.data_file.file_path)


def manifest_size_model(manifests: list[ManifestFile]) -> tuple[float, float]:
    """(bytes of a manifest's header, bytes per entry), fitted by least squares to the
    manifests' lengths and entry counts (a manifest of a few files is mostly header: the
    mean size per entry would overstate an entry several times)."""
    points = [
        ((m.added_files_count or 0) + (m.existing_files_count or 0), m.manifest_length)
        for m in manifests
    ]
    points = [(n, length) for n, length in points if n > 0]
    if not points:
        return 0.0, 1.0
    total_n = sum(n for n, _ in points)
    mean_n = total_n / len(points)
    mean_len = sum(length for _, length in points) / len(points)
    spread = sum((n - mean_n) ** 2 for n, _ in points)
    if spread == 0:
        return 0.0, sum(length for _, length in points) / total_n
    slope = sum((n - mean_n) * (length - mean_len) for n, length in points) / spread
    if slope <= 0:
        return 0.0, sum(length for _, length in points) / total_n
    return max(0.0, mean_len - slope * mean_n), slope


class _RewriteManifests(_SnapshotProducer["_RewriteManifests"]):
    """Rewrite the head's data manifests (those ``rewrite_if`` selects, all by default);
    data files, the other data manifests and delete manifests unchanged."""

    target_bytes: int = 8 * 1024 * 1024
    rewrite_if: Callable[[ManifestFile], bool] | None = None
    replaced: int = 0
    created: int = 0

    def _deleted_entries(self) -> list[ManifestEntry]:
        return []

    def _validate_concurrency(self) -> None:
        """Nothing to validate: every attempt rebuilds from the newest head."""

    def _existing_manifests(self) -> list[ManifestFile]:
        head = self._transaction.table_metadata.snapshot_by_name(self._target_branch)
        if head is None:
            return []
        manifests = head.manifests(self._io)
        data = [m for m in manifests if m.content == ManifestContent.DATA]
        chosen = data if self.rewrite_if is None else [m for m in data if self.rewrite_if(m)]
        rewritten = {m.manifest_path for m in chosen}
        others = [m for m in manifests if m.manifest_path not in rewritten]
        entries = [
            e for m in chosen for e in m.fetch_manifest_entry(self._io, discard_deleted=True)
        ]
        entries.sort(key=_partition_key)
        header, per_entry = manifest_size_model(data)
        per_manifest = max(1, int((self.target_bytes - header) / max(per_entry, 1.0)))
        written: list[ManifestFile] = []
        start = 0
        while start < len(entries):
            spec_id = entries[start].data_file.spec_id
            chunk: list[ManifestEntry] = []
            while (
                start < len(entries)
                and len(chunk) < per_manifest
                and entries[start].data_file.spec_id == spec_id
            ):
                chunk.append(entries[start])
                start += 1
            with self.new_manifest_writer(self.spec(spec_id)) as writer:
                for entry in chunk:
                    writer.existing(entry)
            written.append(writer.to_manifest_file())
        self.replaced, self.created = len(chosen), len(written)
        return written + others

    def _summary(self, snapshot_properties: dict[str, str] = EMPTY_DICT) -> Summary:
        props = {
            **snapshot_properties,
            "manifests-replaced": str(self.replaced),
            "manifests-created": str(self.created),
        }
        return relabel(super()._summary(props), Operation.REPLACE)


@dataclass(frozen=True)
class ManifestRewrite:
    """What a committed manifest rewrite did."""

    manifests_replaced: int
    manifests_created: int


def commit_manifest_rewrite(
    table: Table,
    *,
    target_bytes: int,
    properties: Mapping[str, str] | None = None,
    rewrite_if: Callable[[ManifestFile], bool] | None = None,
) -> ManifestRewrite:
    """One attempt to rewrite the current snapshot's data manifests (those ``rewrite_if``
    selects; all by default) into manifests of about ``target_bytes``, ordered by
    partition; the others stay as they are. Raises ``CommitFailedException`` when the
    catalog kept refusing (pyiceberg's own retries keep the stale base)."""
    txn = begin(table)
    producer = _RewriteManifests(
        operation=Operation.OVERWRITE,
        transaction=txn,
        io=table.io,
        snapshot_properties=dict(properties or {}),
    )
    producer.target_bytes = target_bytes
    producer.rewrite_if = rewrite_if
    producer.commit()
    txn.commit_transaction()
    return ManifestRewrite(producer.replaced, producer.created)
