"""catalog.snapshot_index: the indexed ``snapshot_by_id`` answers what pyiceberg 0.12's
scan answers, for every retained id, an unknown id, and after updates and expiry."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pyarrow as pa
from pyiceberg.table.metadata import TableMetadataCommonFields
from pyiceberg.table.snapshots import Snapshot

import catalog  # noqa: F401  (installs the index)
from catalog import begin, open_catalog, snapshot_index
from lakehouse.settings import Settings
from lakehouse.tables import ensure_tables


def _scan(metadata: object, snapshot_id: int) -> Snapshot | None:
    """An oracle independent of both implementations."""
    return next((s for s in metadata.snapshots if s.snapshot_id == snapshot_id), None)  # type: ignore[attr-defined]


def _rows(start: int, n: int) -> pa.Table:
    ts = pa.array(
        [datetime(2024, 5, 1, i % 24, tzinfo=UTC) for i in range(n)], pa.timestamp("us", tz="UTC")
    )
    return pa.table(
        {
            "event_id": [f"e{start + i}" for i in range(n)],
            "user_id": ["u"] * n,
            "event_type": ["v"] * n,
            "client_ts": ts,
            "server_ts": ts,
            "session_id": pa.nulls(n, pa.string()),
            "properties": pa.nulls(n, pa.string()),
        }
    )


def test_the_index_is_installed_and_pinned() -> None:
    assert TableMetadataCommonFields.snapshot_by_id is snapshot_index.snapshot_by_id
    # pyiceberg's own lookup (kept for misses) is the linear scan of 0.12
    assert snapshot_index._SCAN.__qualname__ == "TableMetadataCommonFields.snapshot_by_id"


def test_lookup_equals_a_scan_across_commits_and_expiry(settings: Settings) -> None:
    events = ensure_tables(open_catalog(settings), settings.table)[0].events
    arrow = events.schema().as_arrow()
    seen: list[object] = []
    for k in range(40):  # past the size where the index is used
        with begin(events) as tx:
            tx.append(_rows(k * 3, 3).cast(arrow))
        metadata = events.metadata
        seen.append(metadata)
        ids = [s.snapshot_id for s in metadata.snapshots]
        assert len(ids) == k + 1
        for i in ids:
            found = metadata.snapshot_by_id(i)
            assert found is not None and found is _scan(metadata, i)
        assert metadata.snapshot_by_id(-1) is None
        assert events.current_snapshot() is _scan(metadata, metadata.current_snapshot_id)
    # an old version of the metadata still answers for its own snapshots only
    old = seen[20]
    newest = events.metadata.snapshots[-1].snapshot_id
    assert old.snapshot_by_id(newest) is None  # type: ignore[attr-defined]
    # expiry: the expired snapshots are gone from the new metadata
    first = [s.snapshot_id for s in events.metadata.snapshots[:10]]
    events.maintenance.expire_snapshots().by_ids(first).commit()
    events.refresh()
    for i in first:
        assert events.metadata.snapshot_by_id(i) is None
    for s in events.metadata.snapshots:
        assert events.metadata.snapshot_by_id(s.snapshot_id) is s
    # a re-parsed copy (another process's view) answers the same
    reloaded = open_catalog(settings).load_table(events.name())
    for s in events.metadata.snapshots:
        found = reloaded.metadata.snapshot_by_id(s.snapshot_id)
        assert found is not None and found == s


def test_an_in_place_change_of_the_list_is_seen() -> None:
    class Fake:
        def __init__(self, snapshots: list[Snapshot]) -> None:
            self.snapshots = snapshots
            self.table_uuid = uuid.uuid4()

    snaps = [
        Snapshot(snapshot_id=i, timestamp_ms=i, manifest_list=f"m{i}", sequence_number=i)
        for i in range(1, 30)
    ]
    fake = Fake(list(snaps))
    assert snapshot_index.snapshot_by_id(fake, 5) is snaps[4]
    extra = Snapshot(snapshot_id=99, timestamp_ms=99, manifest_list="m", sequence_number=99)
    fake.snapshots.append(extra)
    assert snapshot_index.snapshot_by_id(fake, 99) is extra
    fake.snapshots = fake.snapshots[5:]  # a new list, as pyiceberg's expiry makes
    assert snapshot_index.snapshot_by_id(fake, 5) is None
    assert snapshot_index.snapshot_by_id(fake, 6) is snaps[5]
