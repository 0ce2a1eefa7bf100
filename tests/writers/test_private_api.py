"""The pyiceberg 0.12 internals the writer relies on (pinned exactly in pyproject.toml).
If a pyiceberg upgrade changes them, these tests fail before any data is harmed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from importlib.metadata import version

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from catalog import open_catalog
from catalog.metadata import apply_updates
from lakehouse.settings import Settings
from lakehouse.tables import ensure_tables
from tests.writers.events import BASE
from writers.commit import CachedTransaction
from writers.files import write_sorted

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _rows(n: int, hours: int = 3) -> pa.Table:
    ts = [BASE + timedelta(seconds=i * hours * 3600 // n) for i in range(n)]
    return pa.table(
        {
            "event_id": [f"e{i:05d}" for i in range(n)],
            "user_id": ["u"] * n,
            "event_type": ["view"] * n,
            "client_ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
            "server_ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
            "session_id": pa.array([None] * n, pa.string()),
            "properties": pa.array([None] * n, pa.string()),
        }
    )


def test_pyiceberg_is_the_pinned_version() -> None:
    assert version("pyiceberg") == "0.12.0"


def test_write_sorted_describes_files_like_pyiceberg_does(sqlite_settings: Settings) -> None:
    tables, _ = ensure_tables(open_catalog(sqlite_settings), sqlite_settings.table)
    events = tables.events
    batch = _rows(300).cast(events.schema().as_arrow())
    files = write_sorted(events, events.metadata, batch)
    assert len(files) == 3  # one per hour
    for data_file in files:
        assert data_file.sort_order_id == events.metadata.default_sort_order_id == 1
        on_disk = pq.read_table(data_file.file_path.removeprefix("file://"))
        assert data_file.record_count == on_disk.num_rows == 100
        hour = pc.floor_temporal(on_disk.column("client_ts"), unit="hour")[0].as_py()
        assert data_file.partition[0] == int(
            (hour - EPOCH).total_seconds() // 3600
        )  # hours since epoch
        assert set(data_file.lower_bounds) == set(data_file.upper_bounds) >= {1, 4, 5}
    with CachedTransaction(events) as tx, tx.update_snapshot().fast_append() as append:
        for data_file in files:
            append.append_data_file(data_file)
    assert events.scan().to_arrow().num_rows == 300
    assert [t.file.sort_order_id for t in events.scan().plan_files()] == [1, 1, 1]


def test_cached_transaction_matches_pyiceberg_metadata(sqlite_settings: Settings) -> None:
    from pyiceberg.table.update import update_table_metadata

    tables, _ = ensure_tables(open_catalog(sqlite_settings), sqlite_settings.table)
    events = tables.events
    tx = CachedTransaction(events)
    tx.append(_rows(10).cast(events.schema().as_arrow()), snapshot_properties={"k": "1"})
    first = tx.table_metadata
    assert tx.table_metadata is first, "unchanged updates reuse the applied metadata"
    expected = update_table_metadata(events.metadata, tx._updates)
    ours = apply_updates(events.metadata, tx._updates)
    skip = {"last_updated_ms"}
    assert ours.model_dump(exclude=skip) == expected.model_dump(exclude=skip)
    tx.append(_rows(5).cast(events.schema().as_arrow()))
    assert tx.table_metadata is not first and len(tx.table_metadata.snapshots) == 2
    tx.commit_transaction()
    events.refresh()
    assert len(events.metadata.snapshots) == 2 and events.scan().to_arrow().num_rows == 15
