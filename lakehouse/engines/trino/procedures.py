"""Snapshot expiry, orphan removal and manifest rewriting carried out by Trino's table
procedures, reporting the same result objects as :mod:`maintenance`.

Trino 476's ``expire_snapshots``, ``remove_orphan_files`` and ``optimize_manifests``
return no counts, so the counts are taken from the table itself: snapshot ids before and
after, manifest counts before and after (pyiceberg), and a listing of the table location
before and after (a file present before and gone after was deleted by the procedure).
"""

from __future__ import annotations

import logging
import posixpath
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from lakehouse.engines.trino.client import query
from lakehouse.engines.trino.sql import duration_literal, table_ref
from lakehouse.errors import UsageError
from lakehouse.settings import Settings
from maintenance.expire import snapshots_to_expire
from maintenance.manifests import manifest_counts
from maintenance.orphans import remove_orphan_files as python_orphans
from maintenance.paths import ListedFile, canonical, list_files
from maintenance.results import ExpiryResult, ManifestResult, OrphanResult

if TYPE_CHECKING:
    from pyiceberg.table import Table
    from trino.dbapi import Connection

log = logging.getLogger(__name__)

# Trino's clock runs a little after ours: a retention is lengthened by this much so that a
# snapshot retain_last protects is never old enough to expire when Trino judges it.
CLOCK_MARGIN = timedelta(minutes=5)


@dataclass(frozen=True)
class Listing:
    """Files under the table location at one moment, by kind."""

    files: dict[str, ListedFile]

    @classmethod
    def take(cls, table: Table) -> Listing:
        return cls({f.key: f for f in list_files(table.location(), table.io)})

    def gone(self, later: Listing) -> list[ListedFile]:
        return [f for key, f in self.files.items() if key not in later.files]


def file_kind(key: str) -> str:
    """``data``, ``manifest_list``, ``manifest``, ``metadata`` or ``other``."""
    name = posixpath.basename(key)
    if name.endswith((".parquet", ".orc", ".avro")) and "/data/" in key:
        return "data"
    if name.endswith(".avro"):
        return "manifest_list" if name.startswith("snap-") else "manifest"
    if name.endswith((".metadata.json", ".metadata.json.gz")):
        return "metadata"
    return "other"


def _execute(table_sql: str, procedure: str, connection: Connection) -> None:
    query(f"ALTER TABLE {table_sql} EXECUTE {procedure}", connection=connection)


def effective_retention(
    table: Table, retention: timedelta, retain_last: int, now: datetime
) -> timedelta:
    """The ``retention_threshold`` that expires what ``maintenance.expire_snapshots``
    would: ``retention``, lengthened so that the last ``retain_last`` snapshots of every
    branch (and tagged ones) are younger than the cutoff. Trino has no retain-last
    argument; Iceberg itself always keeps each branch head."""
    if retain_last < 1:
        raise UsageError("retain_last must be at least 1 (the current snapshot is always kept)")
    metadata = table.metadata
    older_than = now - retention
    # Snapshots only retain_last protects (Iceberg keeps branch heads and tags itself).
    extra = snapshots_to_expire(metadata, older_than=older_than, retain_last=1)
    extra -= snapshots_to_expire(metadata, older_than=older_than, retain_last=retain_last)
    if not extra:
        return retention
    oldest_ms = min(s.timestamp_ms for s in metadata.snapshots if s.snapshot_id in extra)
    oldest_kept = datetime.fromtimestamp(oldest_ms / 1000, tz=UTC)
    return max(retention, now - oldest_kept + CLOCK_MARGIN)


def expire_snapshots(
    table: Table,
    settings: Settings,
    connection: Connection,
    *,
    retention: timedelta,
    retain_last: int = 1,
    now: datetime | None = None,
    dry_run: bool = False,
) -> ExpiryResult:
    """``ALTER TABLE ... EXECUTE expire_snapshots(retention_threshold => ...)``; Trino
    deletes the files only expired snapshots referenced."""
    now = now or datetime.now(UTC)
    table.refresh()
    threshold = effective_retention(table, retention, retain_last, now)
    if dry_run:
        ids = snapshots_to_expire(table.metadata, older_than=now - threshold, retain_last=1)
        return ExpiryResult(
            snapshots_expired=len(ids), dry_run=True, expired_snapshot_ids=tuple(sorted(ids))
        )
    before_ids = {s.snapshot_id for s in table.metadata.snapshots}
    before = Listing.take(table)
    _execute(
        table_ref(settings),
        f"expire_snapshots(retention_threshold => {duration_literal(threshold)})",
        connection,
    )
    table.refresh()
    gone_ids = before_ids - {s.snapshot_id for s in table.metadata.snapshots}
    counts = {"data": 0, "manifest": 0, "manifest_list": 0, "metadata": 0, "other": 0}
    for listed in before.gone(Listing.take(table)):
        counts[file_kind(listed.key)] += 1
    log.info("trino expired %s snapshots, %s files gone", len(gone_ids), sum(counts.values()))
    return ExpiryResult(
        snapshots_expired=len(gone_ids),
        data_files_deleted=counts["data"],
        manifests_deleted=counts["manifest"],
        manifest_lists_deleted=counts["manifest_list"],
        metadata_files_deleted=counts["metadata"],
        files_deleted=sum(counts.values()),
        expired_snapshot_ids=tuple(sorted(gone_ids)),
    )


def remove_orphan_files(
    table: Table,
    settings: Settings,
    connection: Connection,
    *,
    older_than: timedelta,
    now: datetime | None = None,
    dry_run: bool = False,
) -> OrphanResult:
    """``ALTER TABLE ... EXECUTE remove_orphan_files(retention_threshold => ...)``.

    The Python job's dry run (metadata and a listing only) finds the orphans, and is the
    whole answer with ``dry_run``. Trino then deletes every unreferenced file older than
    the window under the table location, Iceberg's file kinds or not (the Python job
    leaves other files alone): ``orphans_deleted`` and ``orphan_paths`` are the files gone
    afterwards; ``delete_failures`` the orphans found that are still there."""
    found = python_orphans(table, older_than=older_than, now=now, dry_run=True)
    if dry_run:
        return found
    before = Listing.take(table)
    _execute(
        table_ref(settings),
        f"remove_orphan_files(retention_threshold => {duration_literal(older_than)})",
        connection,
    )
    after = Listing.take(table)
    gone = before.gone(after)
    left = [p for p in found.orphan_paths if canonical(p) in after.files]
    log.info("trino removed %s files (%s orphans found)", len(gone), found.orphans_found)
    return OrphanResult(
        files_scanned=found.files_scanned,
        orphans_found=found.orphans_found,
        orphans_deleted=len(gone),
        orphans_too_recent=found.orphans_too_recent,
        bytes_found=found.bytes_found,
        delete_failures=len(left),
        orphan_paths=tuple(sorted(f.location for f in gone)),
    )


def hour_partitions(table: Table) -> int:
    """Partitions with live data files in the current snapshot."""
    snapshot = table.current_snapshot()
    if snapshot is None:
        return 0
    seen: set[tuple[object, ...]] = set()
    for manifest in snapshot.manifests(table.io):
        for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=True):
            part = entry.data_file.partition
            seen.add((entry.data_file.spec_id, *(part[i] for i in range(len(part)))))
    return len(seen)


def optimize_manifests(
    table: Table,
    settings: Settings,
    connection: Connection,
    *,
    max_manifests: int,
    dry_run: bool = False,
) -> ManifestResult:
    """``ALTER TABLE ... EXECUTE optimize_manifests`` when the current snapshot lists
    more data manifests than it needs, or manifests with no live file.

    Trino clusters manifests by partition value: the best it produces is one manifest per
    hour partition. So the bar is the larger of ``max_manifests`` and the number of
    partitions; otherwise every run would rewrite the manifests again to no effect."""
    table.refresh()
    before, dead = manifest_counts(table)
    bar = max(max_manifests, hour_partitions(table))
    if before <= bar and not dead:
        return ManifestResult(manifests_before=before, manifests_after=before, dry_run=dry_run)
    if dry_run:
        return ManifestResult(
            manifests_before=before, manifests_after=before, rewritten=True, dry_run=True
        )
    _execute(table_ref(settings), "optimize_manifests", connection)
    table.refresh()
    after, _ = manifest_counts(table)
    log.info("trino rewrote %s data manifests into %s", before, after)
    return ManifestResult(
        manifests_before=before, manifests_after=after, manifests_rewritten=before, rewritten=True
    )
