"""catalog.avro_readers: manifest lists and manifests read with the cached schema and
reader trees equal what pyiceberg 0.12 reads without them, and a tree is built once per
schema, not once per file."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pyiceberg.avro.file as avro_file
import pytest
from pyiceberg.manifest import ManifestFile, read_manifest_list
from pyiceberg.table import Table

import catalog  # noqa: F401  (installs the caches)
from catalog import avro_readers
from tests.maintenance.builders import append, make_rows, sort_rows


def test_the_caches_are_installed_over_pyiceberg_0_12s_hooks() -> None:
    assert avro_file.AvroFileHeader.get_schema is avro_readers._get_schema
    assert avro_file.resolve_reader is avro_readers._resolve_reader
    assert avro_file.construct_reader is avro_readers._construct_reader
    assert avro_readers._CONSTRUCT.__module__ == "pyiceberg.avro.resolver"
    assert avro_readers._GET_SCHEMA.__qualname__ == "AvroFileHeader.get_schema"
    assert avro_readers._RESOLVE.__module__ == "pyiceberg.avro.resolver"


def _entries(manifest: ManifestFile, table: Table) -> list[tuple[object, ...]]:
    return [
        (
            e.status,
            e.snapshot_id,
            e.sequence_number,
            e.file_sequence_number,
            e.data_file.file_path,
            e.data_file.record_count,
            e.data_file.file_size_in_bytes,
            tuple(e.data_file.partition),
            e.data_file.lower_bounds,
            e.data_file.upper_bounds,
            e.data_file.null_value_counts,
            e.data_file.sort_order_id,
        )
        for e in manifest.fetch_manifest_entry(table.io, discard_deleted=False)
    ]


def test_reads_equal_pyiceberg_s_own_and_build_one_tree_per_schema(
    sqlite_events: Table, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = sqlite_events
    rng = random.Random(3)
    base = datetime(2024, 5, 1, tzinfo=UTC)
    for b in range(6):
        append(table, sort_rows(make_rows(rng, 6, base + timedelta(hours=b % 3), f"a{b}")))
    # a second partition spec: its manifests' schema differs (another partition struct)
    # while pyiceberg reads them with the same read schema
    with table.update_spec() as update:
        update.add_identity("event_type")
    for b in range(2):
        append(table, sort_rows(make_rows(rng, 6, base + timedelta(hours=b), f"b{b}")))
    lists = [s.manifest_list for s in table.metadata.snapshots]
    manifests = {
        m.manifest_path: m for s in table.metadata.snapshots for m in s.manifests(table.io)
    }

    def read_all() -> tuple[list[object], list[object]]:
        listed = [
            [
                (m.manifest_path, m.added_files_count, m.partitions)
                for m in read_manifest_list(table.io.new_input(path))
            ]
            for path in lists
        ]
        return listed, [_entries(m, table) for m in manifests.values()]

    avro_readers._readers.clear()
    avro_readers._schemas.clear()
    before = dict(avro_readers.stats)
    cached = read_all()
    built = avro_readers.stats["readers_built"] - before["readers_built"]
    parsed = avro_readers.stats["schemas_parsed"] - before["schemas_parsed"]
    # one manifest-list schema and a manifest schema per spec: a tree for each, and one
    # for the file header every file starts with
    assert len(lists) == 8 and len(manifests) >= 8
    assert {m.partition_spec_id for m in manifests.values()} == {0, 1}
    assert parsed == 3 and built == 4, (parsed, built)
    read_all()  # and none more when the same files are read again
    assert avro_readers.stats["readers_built"] - before["readers_built"] == 4

    monkeypatch.setattr(avro_file.AvroFileHeader, "get_schema", avro_readers._GET_SCHEMA)
    monkeypatch.setattr(avro_file, "resolve_reader", avro_readers._RESOLVE)
    monkeypatch.setattr(avro_file, "construct_reader", avro_readers._CONSTRUCT)
    assert read_all() == cached  # pyiceberg's own reading, tree built per file
