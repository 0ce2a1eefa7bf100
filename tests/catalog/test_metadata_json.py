"""The metadata files written through the incremental serialisation
(catalog.metadata.metadata_json_bytes) read back, with pyiceberg's own parser, as the
table metadata pyiceberg holds: over many commits, with another writer's commit and an
expiry in between."""

from __future__ import annotations

import json

from pyiceberg.serializers import FromInputFile
from pyiceberg.table import Table
from pyiceberg.table.metadata import TableMetadataUtil

from catalog import open_catalog
from catalog.metadata import metadata_json_bytes
from lakehouse import schema as spec
from lakehouse.settings import Settings
from lakehouse.tables import ensure_tables, load_tables
from tests.writers.events import event
from writers import EventWriter


def _check_file(table: Table) -> None:
    """The file the catalog points at equals the model, and pyiceberg's own JSON."""
    on_disk = FromInputFile.table_metadata(table.io.new_input(table.metadata_location))
    assert on_disk == table.metadata
    with table.io.new_input(table.metadata_location).open() as stream:
        raw = json.loads(stream.read())
    assert raw == json.loads(table.metadata.model_dump_json())
    assert len(raw["snapshots"]) == len(table.metadata.snapshots)
    assert len(raw["snapshot-log"]) == len(table.metadata.snapshot_log)


def test_fifty_commits_another_writer_and_an_expiry(settings: Settings) -> None:
    ensure_tables(open_catalog(settings), settings.table)
    writer = EventWriter(settings)
    other = EventWriter(settings, catalog=open_catalog(settings))
    events = writer.tables.events
    for k in range(50):
        who = other if k in (20, 21, 35) else writer
        who.write([event(k * 4 + j, minutes=k * 30 + j) for j in range(4)], batch_id=f"b{k}")
        who.flush()
        events.refresh()
        _check_file(events)
    fresh = load_tables(open_catalog(settings), settings.table).events
    assert [s.snapshot_id for s in fresh.metadata.snapshots] == [
        s.snapshot_id for s in events.metadata.snapshots
    ]
    assert len(fresh.metadata.snapshots) == 50
    # the other writer's three commits are in the final file, in their places
    batch_keys = [s.summary[spec.SUMMARY_WRITER] for s in fresh.metadata.snapshots]
    assert [i for i, w in enumerate(batch_keys) if w == other.writer_id] == [20, 21, 35]

    # expiry builds a list that is no extension of the last one
    gone = [s.snapshot_id for s in events.metadata.snapshots[:15]]
    events.maintenance.expire_snapshots().by_ids(gone).commit()
    events.refresh()
    _check_file(events)
    assert len(events.metadata.snapshots) == 35
    for k in range(50, 53):  # and appending resumes from there
        writer.write([event(k * 4 + j) for j in range(4)], batch_id=f"b{k}")
        writer.flush()
        events.refresh()
        _check_file(events)
    final = json.loads(metadata_json_bytes(events.metadata))
    assert [s["snapshot-id"] for s in final["snapshots"]] == [
        s.snapshot_id for s in events.metadata.snapshots
    ]
    assert TableMetadataUtil.parse_raw(metadata_json_bytes(events.metadata)) == events.metadata


def test_a_list_that_is_not_an_extension_is_serialised_afresh(settings: Settings) -> None:
    """Expired at the front and as many added at the end (as seen by a process that
    missed the versions in between): same length or longer, but not an extension."""
    writer = EventWriter(settings)
    for k in range(6):
        writer.write([event(k * 2 + j) for j in range(2)], batch_id=f"b{k}")
        writer.flush()
    events = writer.tables.events
    events.refresh()
    snaps, log = events.metadata.snapshots, events.metadata.snapshot_log
    first = events.metadata.model_copy(update={"snapshots": snaps[:3], "snapshot_log": log[:3]})
    later = events.metadata.model_copy(update={"snapshots": snaps[2:], "snapshot_log": log[2:]})
    for metadata in (first, later, events.metadata, first):
        written = metadata_json_bytes(metadata)
        assert json.loads(written) == json.loads(metadata.model_dump_json())
        assert TableMetadataUtil.parse_raw(written) == metadata
