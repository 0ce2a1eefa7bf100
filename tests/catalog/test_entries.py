"""catalog.entries: a manifest's entries decoded once per process, equal to what
pyiceberg reads, bounded, least recently used out first."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from pyiceberg.manifest import ManifestEntry, ManifestFile
from pyiceberg.table import Table

from catalog import entries
from maintenance import compact, rewrite_manifests
from tests.maintenance.builders import append, make_rows, sort_rows


def _key(e: ManifestEntry) -> tuple[object, ...]:
    df = e.data_file
    return (
        e.status,
        e.snapshot_id,
        e.sequence_number,
        e.file_sequence_number,
        df.file_path,
        df.record_count,
        df.file_size_in_bytes,
        tuple(df.partition),
        df.lower_bounds,
        df.upper_bounds,
        df.sort_order_id,
    )


@pytest.fixture
def manifests(sqlite_events: Table) -> tuple[Table, list[ManifestFile]]:
    """A table whose manifests hold ADDED, EXISTING and DELETED entries."""
    table = sqlite_events
    rng = random.Random(11)
    base = datetime(2024, 5, 1, tzinfo=UTC)
    for b in range(8):
        append(table, sort_rows(make_rows(rng, 5, base + timedelta(hours=b % 2), f"a{b}")))
    compact(table)  # DELETED entries
    for b in range(4):
        append(table, sort_rows(make_rows(rng, 5, base + timedelta(hours=2), f"b{b}")))
    rewrite_manifests(table, max_manifests=1)  # EXISTING entries
    table.refresh()
    found = {m.manifest_path: m for s in table.metadata.snapshots for m in s.manifests(table.io)}
    return table, list(found.values())


def test_entries_equal_pyiceberg_s_and_are_read_once(
    manifests: tuple[Table, list[ManifestFile]],
) -> None:
    table, found = manifests
    entries.clear()
    statuses = set()
    for manifest in found:
        for discard in (False, True):
            own = manifest.fetch_manifest_entry(table.io, discard_deleted=discard)
            cached = entries.manifest_entries(manifest, table.io, discard_deleted=discard)
            assert [_key(e) for e in cached] == [_key(e) for e in own]
            statuses |= {e.status.name for e in own}
    assert statuses == {"ADDED", "EXISTING", "DELETED"}
    before = dict(entries.stats)
    for manifest in found:
        entries.manifest_entries(manifest, table.io)
    assert entries.stats["reads"] == before["reads"]
    assert entries.stats["hits"] == before["hits"] + len(found)


def test_the_cache_is_bounded_by_entries(
    manifests: tuple[Table, list[ManifestFile]], monkeypatch: pytest.MonkeyPatch
) -> None:
    table, found = manifests
    sizes = {
        m.manifest_path: len(m.fetch_manifest_entry(table.io, discard_deleted=False)) for m in found
    }
    bound = max(sizes.values()) * 2
    monkeypatch.setattr(entries, "MAX_ENTRIES", bound)
    entries.clear()
    for manifest in found:
        entries.manifest_entries(manifest, table.io)
        assert entries._held == sum(len(v) for v in entries._cache.values()) <= bound
    assert len(entries._cache) < len(found)  # some went out
    # the most recently read one is kept, the first read went out first
    assert found[-1].manifest_path in entries._cache
    assert found[0].manifest_path not in entries._cache
    reads = entries.stats["reads"]
    entries.manifest_entries(found[0], table.io)  # read again, and kept again
    assert entries.stats["reads"] == reads + 1 and found[0].manifest_path in entries._cache
    monkeypatch.setattr(entries, "MAX_ENTRIES", 0)
    entries.clear()
    assert entries.manifest_entries(found[0], table.io)  # too big to keep: read, not kept
    assert not entries._cache and entries._held == 0


def test_a_hit_makes_a_manifest_the_last_to_go(
    manifests: tuple[Table, list[ManifestFile]], monkeypatch: pytest.MonkeyPatch
) -> None:
    table, found = manifests
    size = {
        m.manifest_path: len(m.fetch_manifest_entry(table.io, discard_deleted=False)) for m in found
    }
    by_size = sorted(
        (m for m in found if size[m.manifest_path]), key=lambda m: size[m.manifest_path]
    )
    assert len(by_size) >= 3
    small, a, big = by_size[0], by_size[1], by_size[-1]
    monkeypatch.setattr(entries, "MAX_ENTRIES", size[a.manifest_path] + size[big.manifest_path])
    entries.clear()
    entries.manifest_entries(a, table.io)
    entries.manifest_entries(big, table.io)
    entries.manifest_entries(a, table.io)  # a hit: ``big`` is now the least recently used
    entries.manifest_entries(small, table.io)  # no room: one must go
    assert a.manifest_path in entries._cache and big.manifest_path not in entries._cache
