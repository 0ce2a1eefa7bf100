"""Keep the manifest count per snapshot low: when a snapshot has more data manifests than
``max_manifests``, rewrite them into few manifests ordered by hour partition.

Commit latency and scan planning grow with the manifests a snapshot lists (writers add one
per append; every compaction commit adds some). The rewrite commits a ``replace`` snapshot
that changes no data (Iceberg's RewriteManifests), through pyiceberg's private snapshot
producer; it is rebuilt from the newest head on every commit attempt, so concurrent
appends are kept.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Any

from pyiceberg.exceptions import CommitFailedException
from pyiceberg.manifest import ManifestContent, ManifestEntry, ManifestFile
from pyiceberg.table import Table, TableProperties
from pyiceberg.table.snapshots import Operation, Summary
from pyiceberg.table.update.snapshot import _SnapshotProducer
from pyiceberg.typedef import EMPTY_DICT
from pyiceberg.utils.properties import property_as_int

from lakehouse.errors import CommitError
from lakehouse.schema import SUMMARY_KIND
from maintenance.inventory import KIND_MANIFESTS
from maintenance.replace import relabel
from maintenance.results import ManifestResult

log = logging.getLogger(__name__)

DEFAULT_MAX_MANIFESTS = 8
_DEFAULT_TARGET = 8 * 1024 * 1024


def _partition_key(entry: ManifestEntry) -> tuple[Any, ...]:
    partition = entry.data_file.partition
    values = [partition[i] for i in range(len(partition))]
    return (entry.data_file.spec_id, *((v is None, v) for v in values), entry.data_file.file_path)


class _RewriteManifests(_SnapshotProducer["_RewriteManifests"]):
    """Rewrite the head's data manifests; data files and delete manifests unchanged."""

    target_bytes: int = _DEFAULT_TARGET
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
        others = [m for m in manifests if m.content != ManifestContent.DATA]
        entries = [e for m in data for e in m.fetch_manifest_entry(self._io, discard_deleted=True)]
        entries.sort(key=_partition_key)
        per_entry = sum(m.manifest_length for m in data) / max(len(entries), 1)
        per_manifest = max(1, int(self.target_bytes / max(per_entry, 1.0)))
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
        self.replaced, self.created = len(data), len(written)
        return written + others

    def _summary(self, snapshot_properties: dict[str, str] = EMPTY_DICT) -> Summary:
        props = {
            **snapshot_properties,
            "manifests-replaced": str(self.replaced),
            "manifests-created": str(self.created),
        }
        return relabel(super()._summary(props), Operation.REPLACE)


def manifest_counts(table: Table) -> tuple[int, int]:
    """(data manifests, those of them with no live file) in the current snapshot."""
    snapshot = table.current_snapshot()
    if snapshot is None:
        return 0, 0
    data = [m for m in snapshot.manifests(table.io) if m.content == ManifestContent.DATA]
    dead = [m for m in data if not m.has_added_files() and not m.has_existing_files()]
    return len(data), len(dead)


def rewrite_manifests(
    table: Table, *, max_manifests: int = DEFAULT_MAX_MANIFESTS, dry_run: bool = False
) -> ManifestResult:
    """Rewrite the current snapshot's data manifests when there are more than
    ``max_manifests`` of them, or when some list no live file (left by rewrites)."""
    table.refresh()
    before, dead = manifest_counts(table)
    if before <= max_manifests and not dead:
        return ManifestResult(manifests_before=before, manifests_after=before, dry_run=dry_run)
    if dry_run:
        return ManifestResult(
            manifests_before=before, manifests_after=before, rewritten=True, dry_run=True
        )
    producer = _commit_rewrite(table)
    after, _ = manifest_counts(table)
    log.info("rewrote %s data manifests into %s", producer.replaced, after)
    return ManifestResult(
        manifests_before=before,
        manifests_after=after,
        manifests_rewritten=producer.replaced,
        rewritten=True,
    )


_REWRITE_ATTEMPTS = 6


def _commit_rewrite(table: Table) -> _RewriteManifests:
    """Commit a manifest rewrite of the current snapshot. A rewrite that loses the race
    to writers (pyiceberg's own retries keep the stale base) is planned again on the new
    head, with a growing, jittered pause: it only reorganises metadata, so starting over
    is cheap."""
    for attempt in range(1, _REWRITE_ATTEMPTS + 1):
        txn = table.transaction()
        producer = _RewriteManifests(
            operation=Operation.OVERWRITE,
            transaction=txn,
            io=table.io,
            snapshot_properties={SUMMARY_KIND: KIND_MANIFESTS},
        )
        producer.target_bytes = (
            property_as_int(
                table.metadata.properties,
                TableProperties.MANIFEST_TARGET_SIZE_BYTES,
                _DEFAULT_TARGET,
            )
            or _DEFAULT_TARGET
        )
        try:
            producer.commit()
            txn.commit_transaction()
            return producer
        except CommitFailedException as exc:
            if attempt == _REWRITE_ATTEMPTS:
                raise CommitError(
                    f"manifest rewrite lost {attempt} races to concurrent commits: {exc}"
                ) from exc
            log.info("manifest rewrite lost a race (%s); planning it again", exc)
            time.sleep(random.uniform(0.05, 0.2) * attempt)
            table.refresh()
    raise AssertionError("unreachable")  # pragma: no cover
