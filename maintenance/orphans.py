"""Delete files under the table location that no metadata references.

A file is an orphan when no snapshot (of any branch or tag), manifest, metadata log entry
or statistics file references it. Writes in flight look exactly like orphans, so only
orphans older than the retention window (default 3 days, the Iceberg norm) are deleted,
and a window under 24 hours is refused unless forced (Iceberg's own Spark procedure refuses
it too): a commit that takes longer than the window would lose its files.
Only Iceberg file kinds are considered (Parquet/ORC/Avro data, Avro manifests and
manifest lists, metadata JSON, Puffin statistics); anything else is left alone.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from pyiceberg.table import Table

from lakehouse.durations import format_duration
from lakehouse.errors import UsageError
from maintenance.expire import ReachCache, history_line
from maintenance.paths import DeleteFn, canonical, delete_all, io_delete, list_files
from maintenance.results import OrphanResult

log = logging.getLogger(__name__)

DEFAULT_ORPHAN_RETENTION = timedelta(days=3)
MIN_ORPHAN_RETENTION = timedelta(hours=24)
ICEBERG_SUFFIXES = (
    ".parquet",
    ".orc",
    ".avro",
    ".metadata.json",
    ".metadata.json.gz",
    ".puffin",
    ".stats",
)


def check_orphan_retention(older_than: timedelta, *, force: bool = False) -> None:
    """Refuse an orphan window under :data:`MIN_ORPHAN_RETENTION` unless ``force``."""
    if older_than < MIN_ORPHAN_RETENTION and not force:
        raise UsageError(
            f"orphan retention {format_duration(older_than)} is under "
            f"{format_duration(MIN_ORPHAN_RETENTION)}: files of a commit still in flight look "
            "like orphans and would be deleted, leaving the table pointing at missing files. "
            "Use a window of 24h or more, or pass --force (force=True) when no writer or "
            "maintenance run can be active on the table"
        )


def referenced_files(table: Table) -> set[str]:
    """Canonical locations of every file the table's current metadata references."""
    metadata = table.metadata
    cache = ReachCache(table.io)
    line = history_line(metadata)
    # one line of history: the head's manifests and those recording removals suffice
    reach = cache.reach(list(metadata.snapshots)) if line is None else cache.reach_line(line)
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
    force: bool = False,
) -> OrphanResult:
    """Delete (or, with ``dry_run``, list) orphans older than ``older_than``.

    A window under 24 hours raises :class:`~lakehouse.errors.UsageError` unless ``force``
    (a dry run, which deletes nothing, may use any window)."""
    if not dry_run:
        check_orphan_retention(older_than, force=force)
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
