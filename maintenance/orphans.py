"""Delete files under the table location that no metadata references.

A file is an orphan when no snapshot (of any branch or tag), manifest, metadata log entry
or statistics file references it. Writes in flight look exactly like orphans, so only
orphans older than the retention window (default 3 days, the Iceberg norm) are deleted.
Only Iceberg file kinds are considered (Parquet/ORC/Avro data, Avro manifests and
manifest lists, metadata JSON, Puffin statistics); anything else is left alone.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from pyiceberg.table import Table

from maintenance.expire import ReachCache
from maintenance.paths import DeleteFn, canonical, delete_all, io_delete, list_files
from maintenance.results import OrphanResult

log = logging.getLogger(__name__)

DEFAULT_ORPHAN_RETENTION = timedelta(days=3)
ICEBERG_SUFFIXES = (
    ".parquet",
    ".orc",
    ".avro",
    ".metadata.json",
    ".metadata.json.gz",
    ".puffin",
    ".stats",
)


def referenced_files(table: Table) -> set[str]:
    """Canonical locations of every file the table's current metadata references."""
    metadata = table.metadata
    reach = ReachCache(table.io).reach(list(metadata.snapshots))
    # Files only a DELETED manifest entry mentions are not readable; expiry owns them.
    refs = {*reach.manifest_lists, *reach.manifests, *reach.live_files}
    refs.add(canonical(table.metadata_location))
    refs.update(canonical(e.metadata_file) for e in metadata.metadata_log)
    refs.update(canonical(s.statistics_path) for s in metadata.statistics)
    refs.update(canonical(s.statistics_path) for s in metadata.partition_statistics)
    return refs


def remove_orphan_files(
    table: Table,
    *,
    older_than: timedelta = DEFAULT_ORPHAN_RETENTION,
    now: datetime | None = None,
    dry_run: bool = False,
    delete: DeleteFn | None = None,
) -> OrphanResult:
    """Delete (or, with ``dry_run``, list) orphans older than ``older_than``."""
    now = now or datetime.now(UTC)
    cutoff = now - older_than
    # List first, then read metadata: a file committed in between is then referenced.
    listed = [f for f in list_files(table.location(), table.io) if f.key.endswith(ICEBERG_SUFFIXES)]
    table.refresh()
    refs = referenced_files(table)
    unreferenced = [f for f in listed if f.key not in refs]
    old = [f for f in unreferenced if f.modified is not None and f.modified < cutoff]
    recent = len(unreferenced) - len(old)
    paths = [f.location for f in old]
    if dry_run:
        deleted, failed = 0, 0
    else:
        deleted, failed = delete_all(paths, delete or io_delete(table.io))
    log.info(
        "orphans: %s files scanned, %s unreferenced, %s older than the window, %s deleted",
        len(listed),
        len(unreferenced),
        len(old),
        deleted,
    )
    return OrphanResult(
        files_scanned=len(listed),
        orphans_found=len(old),
        orphans_deleted=deleted,
        orphans_too_recent=recent,
        bytes_found=sum(f.size for f in old),
        delete_failures=failed,
        dry_run=dry_run,
        orphan_paths=tuple(sorted(paths)),
    )
