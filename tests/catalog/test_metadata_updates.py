"""catalog.metadata.apply_updates must produce what pyiceberg 0.12's
update_table_metadata produces (it only skips the deep copy)."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
from pyiceberg.table.update import update_table_metadata

from catalog import open_catalog
from catalog.metadata import apply_updates
from catalog.sql import LakehouseSqlCatalog
from lakehouse.settings import Settings
from lakehouse.tables import ensure_tables


def _batch(n: int) -> pa.Table:
    ts = pa.array(
        [datetime(2024, 5, 1, i % 24, tzinfo=UTC) for i in range(n)], pa.timestamp("us", tz="UTC")
    )
    return pa.table(
        {
            "event_id": [f"e{i}" for i in range(n)],
            "user_id": ["u"] * n,
            "event_type": ["v"] * n,
            "client_ts": ts,
            "server_ts": ts,
            "session_id": pa.nulls(n, pa.string()),
            "properties": pa.nulls(n, pa.string()),
        }
    )


def test_sql_catalogs_use_the_lakehouse_subclass(settings: Settings) -> None:
    assert isinstance(open_catalog(settings), LakehouseSqlCatalog)


def test_apply_updates_equals_pyiceberg(settings: Settings) -> None:
    tables, _ = ensure_tables(open_catalog(settings), settings.table)
    events = tables.events
    for _ in range(3):
        events.append(_batch(30).cast(events.schema().as_arrow()), snapshot_properties={"k": "v"})
    tx = events.transaction()
    tx.append(_batch(10).cast(events.schema().as_arrow()))
    tx.set_properties({"x": "1"})
    skip = {"last_updated_ms"}
    for location in (None, events.metadata_location):
        ours = apply_updates(events.metadata, tx._updates, metadata_location=location)
        theirs = update_table_metadata(events.metadata, tx._updates, metadata_location=location)
        assert ours.model_dump(exclude=skip) == theirs.model_dump(exclude=skip)
        assert len(ours.snapshots) == 4
    assert (
        len(
            apply_updates(
                events.metadata, tx._updates, metadata_location=events.metadata_location
            ).metadata_log
        )
        == len(events.metadata.metadata_log) + 1
    )
    tx.commit_transaction()
    events.refresh()
    assert events.properties["x"] == "1" and events.scan().to_arrow().num_rows == 100
    assert events.metadata_location.split("/")[-1].startswith(
        "00004-"
    )  # create, 3 appends, this commit


def test_parsed_metadata_is_reused_by_location(settings: Settings) -> None:
    """Loads of a version this process has seen (or committed) reuse the parsed metadata,
    which must equal what pyiceberg parses from the file; another process's commit is
    parsed from its file."""
    from pyiceberg.serializers import FromInputFile

    from catalog.metadata import METADATA_CACHE

    # the private hook the cache relies on (pyiceberg 0.12.0)
    assert callable(getattr(LakehouseSqlCatalog, "_convert_orm_to_iceberg", None))
    tables, _ = ensure_tables(open_catalog(settings), settings.table)
    events = tables.events
    events.append(_batch(30).cast(events.schema().as_arrow()))
    committed = events.metadata_location
    assert METADATA_CACHE.get(committed) is events.metadata  # put when staged
    hits = METADATA_CACHE.hits
    loaded = open_catalog(settings).load_table(settings.table.identifier)
    assert loaded.metadata_location == committed
    assert METADATA_CACHE.hits > hits, "a load of a known version is not parsed again"
    from_file = FromInputFile.table_metadata(events.io.new_input(committed))
    assert loaded.metadata == from_file
    assert loaded.metadata.model_dump_json() == from_file.model_dump_json()

    METADATA_CACHE.clear()  # as if another process had committed the next version
    other = open_catalog(settings).load_table(settings.table.identifier)
    other.append(_batch(5).cast(other.schema().as_arrow()))
    METADATA_CACHE.clear()
    events.refresh()
    assert events.metadata_location == other.metadata_location
    assert len(events.scan().to_arrow()) == 35
    assert events.metadata == FromInputFile.table_metadata(
        events.io.new_input(events.metadata_location)
    )


def test_metadata_json_parses_like_pyiceberg_s_own(settings: Settings) -> None:
    """The metadata files we write (snapshot JSON reused) read back as pyiceberg's."""
    import json

    from pyiceberg.serializers import FromInputFile
    from pyiceberg.table.metadata import TableMetadataUtil

    from catalog.metadata import metadata_json

    # the private hook the writer relies on (pyiceberg 0.12.0)
    assert "_write_metadata" in LakehouseSqlCatalog.__dict__
    tables, _ = ensure_tables(open_catalog(settings), settings.table)
    events = tables.events
    assert json.loads(metadata_json(events.metadata)) == json.loads(
        events.metadata.model_dump_json()
    )
    for k in range(4):  # more snapshots; the first ones' JSON is reused
        events.append(
            _batch(3 + k).cast(events.schema().as_arrow()), snapshot_properties={"k": str(k)}
        )
    ours = metadata_json(events.metadata)
    assert json.loads(ours) == json.loads(events.metadata.model_dump_json())
    assert TableMetadataUtil.parse_raw(ours) == events.metadata
    on_disk = FromInputFile.table_metadata(events.io.new_input(events.metadata_location))
    assert on_disk == events.metadata and len(on_disk.snapshots) == 4
    assert [s.summary["k"] for s in on_disk.snapshots] == ["0", "1", "2", "3"]


def test_a_retried_snapshot_is_serialised_again(settings: Settings) -> None:
    """pyiceberg retries a commit that lost a race with the same snapshot id but a new
    manifest list and new totals: that snapshot's JSON must not be reused."""
    import json

    from catalog.metadata import metadata_json

    tables, _ = ensure_tables(open_catalog(settings), settings.table)
    events = tables.events
    events.append(_batch(4).cast(events.schema().as_arrow()))
    first = metadata_json(events.metadata)  # caches the snapshot's JSON
    snapshot = events.metadata.snapshots[0]
    retried = snapshot.model_copy(update={"manifest_list": snapshot.manifest_list + ".retry"})
    again = events.metadata.model_copy(update={"snapshots": [retried]})
    parsed = json.loads(metadata_json(again))
    assert parsed["snapshots"][0]["manifest-list"] == snapshot.manifest_list + ".retry"
    assert json.loads(first)["snapshots"][0]["manifest-list"] == snapshot.manifest_list
