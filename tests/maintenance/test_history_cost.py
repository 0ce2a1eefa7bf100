"""Planning, health and expiry read what the table holds now, not its whole history.

Every file they open goes through the table's FileIO; the test counts the opens by kind
(data file, manifest list, manifest). Planning and health open the current snapshot's
manifest list and manifests only, never a data file; expiry opens the manifest lists of
the snapshots it expires plus one, however many snapshots are retained.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest
from pyiceberg.table import Table

from lakehouse import summary
from lakehouse.datafiles import write_hour_file
from maintenance import compact, expire_snapshots, maintenance_lag, plan_compaction
from tests.maintenance.builders import ARROW_SCHEMA, BASE, Fed, make_rows, multiset, sort_rows
from tests.maintenance.test_expire import files_on_disk, referenced

EPOCH_HOUR = int(BASE.timestamp()) // 3600


def _kind(location: str) -> str:
    if location.endswith(".parquet"):
        return "data"
    if "/snap-" in location:
        return "manifest-list"
    return "manifest" if location.endswith(".avro") else "other"


@pytest.fixture
def opened(sqlite_events: Table, monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    counts: Counter[str] = Counter()
    io_class = type(sqlite_events.io)
    real = io_class.new_input

    def counting(self: object, location: str) -> object:
        counts[_kind(location)] += 1
        return real(self, location)  # type: ignore[arg-type]

    monkeypatch.setattr(io_class, "new_input", counting)
    yield counts


def _long_history(table: Table, rounds: int) -> Fed:
    """``rounds`` appends of one small file each into 4 hours, compacted every 4 appends:
    many snapshots, few live files."""
    rng = random.Random(rounds)
    fed = Fed()
    for i in range(rounds):
        rows = make_rows(rng, 4, BASE + timedelta(hours=i % 4), f"r{i}")
        fed.rows += rows
        batch = pa.Table.from_pylist(sort_rows(rows), schema=ARROW_SCHEMA)
        data_file = write_hour_file(
            table.metadata, table.io, batch, hour=EPOCH_HOUR + i % 4, name=f"{uuid.uuid4()}.parquet"
        )
        props = {summary.KIND: summary.KIND_ON_TIME}
        with (
            table.transaction() as tx,
            tx.update_snapshot(snapshot_properties=props).fast_append() as append,
        ):
            append.append_data_file(data_file)
        if i % 4 == 3:
            compact(table)
    table.refresh()
    return fed


def test_plan_and_health_read_only_the_current_snapshot(
    sqlite_events: Table, opened: Counter[str]
) -> None:
    table = sqlite_events
    _long_history(table, 32)
    snapshots = len(table.snapshots())
    assert snapshots >= 40
    manifests = len(table.current_snapshot().manifests(table.io))
    for name, work in (
        ("plan", lambda: plan_compaction(table)),
        ("health", lambda: maintenance_lag(table)),
    ):
        opened.clear()
        work()
        assert opened["data"] == 0, name
        assert opened["manifest-list"] == 1, name
        assert opened["manifest"] <= manifests < snapshots, (name, opened)


def test_expiry_reads_what_it_expires_not_the_retained_history(
    sqlite_events: Table, opened: Counter[str]
) -> None:
    table = sqlite_events
    fed = _long_history(table, 32)
    snapshots = table.metadata.snapshots
    assert len(snapshots) >= 40
    # Nothing old enough: no manifest list is read at all.
    opened.clear()
    nothing = expire_snapshots(table, now=datetime.now(UTC))
    assert nothing.snapshots_expired == 0 and opened["manifest-list"] == 0
    # Expire up to the end of the first compaction run (whose inputs then lose their last
    # reference): the expired manifest lists and the oldest retained one's, no more.
    table.refresh()
    kinds = [s.summary.get(summary.KIND) for s in table.metadata.snapshots]
    k = kinds.index(summary.KIND_COMPACTION)
    while kinds[k] == summary.KIND_COMPACTION:
        k += 1
    assert 5 <= k < len(kinds) - 20
    kept = table.metadata.snapshots[k:]
    rows_by_snapshot = {
        s.snapshot_id: multiset(table.scan(snapshot_id=s.snapshot_id).to_arrow().to_pylist())
        for s in kept[:3]
    }
    before_disk = files_on_disk(table)
    before_refs = referenced(table)
    cutoff = datetime.fromtimestamp(kept[0].timestamp_ms / 1000, UTC)
    opened.clear()
    result = expire_snapshots(table, retention=timedelta(0), now=cutoff)
    assert result.snapshots_expired == k
    assert opened["manifest-list"] <= k + 1, opened
    assert opened["data"] == 0
    # And it deleted exactly what no retained snapshot references (an independent walk).
    table.refresh()
    after_refs = referenced(table)
    deleted = before_disk - files_on_disk(table)
    assert {p for p in deleted if not p.endswith(".metadata.json")} == {
        p for p in before_refs - after_refs if not p.endswith(".metadata.json")
    }
    assert result.data_files_deleted > 0
    assert after_refs <= files_on_disk(table)
    for snapshot_id, rows in rows_by_snapshot.items():
        assert multiset(table.scan(snapshot_id=snapshot_id).to_arrow().to_pylist()) == rows
    assert multiset(table.scan().to_arrow().to_pylist()) == multiset(fed.expected())
