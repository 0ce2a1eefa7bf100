"""The manifest entries a compaction run keeps between its commits
(:class:`catalog.producers.ManifestEntryCache`) are what the manifests on disk hold, and
each manifest is read at most once per run."""

from __future__ import annotations

import random
import sys
from datetime import UTC, datetime, timedelta

import pytest
from pyiceberg.manifest import ManifestFile
from pyiceberg.table import Table

from catalog import entries as decoded
from maintenance import CompactionOptions, compact
from maintenance import replace as replace_module
from tests.maintenance.builders import append, make_rows, sort_rows


def _entry_key(entry) -> tuple:  # type: ignore[no-untyped-def]
    return (
        entry.data_file.file_path,
        entry.snapshot_id,
        entry.sequence_number,
        entry.file_sequence_number,
        int(entry.data_file.record_count),
    )


def test_a_runs_commits_read_each_manifest_once_and_remember_what_they_wrote(
    sqlite_events: Table, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = sqlite_events
    rng = random.Random(11)
    base = datetime(2024, 5, 1, tzinfo=UTC)
    # Each append spans the six hours: every manifest holds files of every hour, so
    # every commit of the run rewrites every manifest that is still live.
    for b in range(5):
        rows = [
            r for h in range(6) for r in make_rows(rng, 8, base + timedelta(hours=h), f"b{b}h{h}")
        ]
        append(table, sort_rows(rows))
    expected = sorted(table.scan().to_arrow().column("event_id").to_pylist())

    caches = []
    real_checker = replace_module.ConflictChecker

    class Recording(real_checker):  # type: ignore[misc, valid-type]
        def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
            super().__init__(*args, **kwargs)
            caches.append(self.entries)

    monkeypatch.setattr(sys.modules["maintenance.compact"], "ConflictChecker", Recording)
    reads: list[str] = []  # manifests read from storage, by planning or by the commits
    real_fetch = ManifestFile.fetch_manifest_entry

    def fetch(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        reads.append(self.manifest_path)
        return real_fetch(self, *args, **kwargs)

    decoded.clear()  # nothing decoded before the run
    monkeypatch.setattr(ManifestFile, "fetch_manifest_entry", fetch)
    result = compact(table, CompactionOptions(max_commits=3))
    monkeypatch.undo()

    assert result.commits == 3 and result.groups_committed == 6
    assert len(caches) == 1
    cache = caches[0]
    assert reads and len(reads) == len(set(reads)), reads  # no manifest read twice
    assert 0 < cache.reads <= len(reads)
    assert cache.reads < len(cache._entries)  # some were known without reading them
    # what the cache holds for a manifest is what the file holds
    for path, entries in cache._entries.items():
        manifest = next(
            (
                m
                for s in table.metadata.snapshots
                for m in s.manifests(table.io)
                if m.manifest_path == path
            ),
            None,
        )
        assert manifest is not None, path
        on_disk = real_fetch(manifest, table.io, discard_deleted=True)
        assert sorted(map(_entry_key, entries)) == sorted(map(_entry_key, on_disk)), path
    table.refresh()
    got = table.scan().to_arrow().column("event_id").to_pylist()
    assert sorted(got) == expected and len(got) == len(set(got))
