"""Keep the manifest count per snapshot low: when a snapshot has more data manifests than
``max_manifests``, rewrite them into few manifests ordered by hour partition.

Commit latency and scan planning grow with the manifests a snapshot lists (writers add one
per append; every compaction commit adds some). The rewrite commits a ``replace`` snapshot
that changes no data (Iceberg's RewriteManifests, :mod:`catalog.producers`); it is
rebuilt from the newest head on every commit attempt, so concurrent appends are kept.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from pyiceberg.manifest import ManifestContent, ManifestFile
from pyiceberg.table import Table, TableProperties
from pyiceberg.utils.properties import property_as_int

from catalog.commit import commit_with_retries
from catalog.producers import ManifestRewrite, commit_manifest_rewrite, manifest_size_model
from lakehouse.schema import SUMMARY_KIND
from maintenance.inventory import KIND_MANIFESTS
from maintenance.results import ManifestResult

log = logging.getLogger(__name__)

DEFAULT_MAX_MANIFESTS = 8
_DEFAULT_TARGET = 8 * 1024 * 1024


def manifest_counts(table: Table) -> tuple[int, int]:
    """(data manifests, those of them with no live file) in the current snapshot."""
    data, dead, _ = _data_manifests(table)
    return data, dead


def _data_manifests(table: Table) -> tuple[int, int, int]:
    """(data manifests, those with no live file, those holding under half the files a
    manifest of the target size holds) in the current snapshot."""
    snapshot = table.current_snapshot()
    if snapshot is None:
        return 0, 0, 0
    data = [m for m in snapshot.manifests(table.io) if m.content == ManifestContent.DATA]
    dead = [m for m in data if not m.has_added_files() and not m.has_existing_files()]
    is_small = _under_half_full(data, target_bytes(table))
    small = [m for m in data if is_small(m)]
    return len(data), len(dead), len(small)


def _under_half_full(data: list[ManifestFile], target: int) -> Callable[[ManifestFile], bool]:
    """Whether a manifest holds under half the files a manifest of ``target`` bytes holds
    (by the size model of ``data``); one with no live file is too."""
    header, per_entry = manifest_size_model(data)
    capacity = (target - header) / max(per_entry, 1.0)
    return lambda m: _files(m) < capacity / 2


def _files(manifest: ManifestFile) -> int:
    return (manifest.added_files_count or 0) + (manifest.existing_files_count or 0)


def target_bytes(table: Table) -> int:
    """The table's manifest size (``commit.manifest.target-size-bytes``)."""
    value = property_as_int(
        table.metadata.properties, TableProperties.MANIFEST_TARGET_SIZE_BYTES, _DEFAULT_TARGET
    )
    return value if value and value > 0 else _DEFAULT_TARGET


def rewrite_manifests(
    table: Table, *, max_manifests: int = DEFAULT_MAX_MANIFESTS, dry_run: bool = False
) -> ManifestResult:
    """Rewrite the current snapshot's data manifests when more than ``max_manifests`` of
    them are under half full (a full one is of ``commit.manifest.target-size-bytes``: a
    table of months keeps several full manifests, each over a range of hours, and they do
    not count), or when some list no live file (left by rewrites)."""
    table.refresh()
    before, dead, small = _data_manifests(table)
    if small <= max_manifests and not dead:
        return ManifestResult(manifests_before=before, manifests_after=before, dry_run=dry_run)
    if dry_run:
        return ManifestResult(
            manifests_before=before, manifests_after=before, rewritten=True, dry_run=True
        )
    rewrite = _commit_rewrite(table)
    after, _ = manifest_counts(table)
    log.info("rewrote %s data manifests into %s", rewrite.manifests_replaced, after)
    return ManifestResult(
        manifests_before=before,
        manifests_after=after,
        manifests_rewritten=rewrite.manifests_replaced,
        rewritten=True,
    )


def _commit_rewrite(table: Table) -> ManifestRewrite:
    """Commit a manifest rewrite of the current snapshot. A rewrite that loses the race
    to writers (pyiceberg's own retries keep the stale base) is planned again on the new
    head: it only reorganises metadata, so starting over is cheap."""

    def attempt(_: int) -> ManifestRewrite:
        target = target_bytes(table)
        snapshot = table.current_snapshot()
        data = [
            m
            for m in (snapshot.manifests(table.io) if snapshot is not None else [])
            if m.content == ManifestContent.DATA
        ]
        return commit_manifest_rewrite(
            table,
            target_bytes=target,
            properties={SUMMARY_KIND: KIND_MANIFESTS},
            # full manifests stay as they are: only the small and the empty ones merge
            rewrite_if=_under_half_full(data, target),
        )

    return commit_with_retries(table, attempt, what="a manifest rewrite")
