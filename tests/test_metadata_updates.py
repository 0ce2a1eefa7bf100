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
