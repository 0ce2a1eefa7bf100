"""What a stream ingest must leave in the tables, checked against the feeder's record
of what it put (not against anything the code under test computed)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from catalog import open_catalog
from lakehouse import summary
from lakehouse.settings import Settings
from lakehouse.tables import load_tables
from tests.streaming.feeder import Feeder
from tests.writers.events import assert_sorted, data_files, read_file, rows


def check_exactly_once(
    settings: Settings, feeder: Feeder, *, put_after: datetime | None = None
) -> dict[str, Any]:
    """Every event put is in the table once; files are sorted; the late events are the
    records of the late snapshots; each bad record is rejected once, naming its stream,
    shard and sequence number. Returns a few counts for the caller's own checks."""
    tables = load_tables(open_catalog(settings), settings.table)
    events = rows(tables.events)
    ids = events.column("event_id").to_pylist()
    assert len(ids) == len(set(ids)), f"{len(ids) - len(set(ids))} events landed twice"
    assert set(ids) == set(feeder.events), (
        f"missing {len(set(feeder.events) - set(ids))}, unexpected {len(set(ids) - set(feeder.events))}"
    )
    for path in data_files(tables.events):
        assert_sorted(read_file(path))
    late_added = sum(
        int(s.summary.additional_properties.get("added-records", 0))
        for s in tables.events.metadata.snapshots
        if s.summary and s.summary.additional_properties.get(summary.KIND) == summary.KIND_LATE
    )
    assert late_added == len(feeder.late), (late_added, len(feeder.late))
    by_id = {r["event_id"]: r for r in events.to_pylist()}
    for eid in feeder.no_server_ts:  # received at the record's arrival time
        received = by_id[eid]["server_ts"]
        assert put_after is None or received >= put_after.replace(microsecond=0), (eid, received)
    for eid, given in feeder.events.items():
        if "server_ts" in given:
            expect = datetime.fromisoformat(given["server_ts"].replace("Z", "+00:00"))
            assert by_id[eid]["server_ts"] == expect, eid
    rejected = rows(tables.rejected)
    sources = rejected.column("source").to_pylist()
    assert sorted(sources) == sorted(feeder.bad), (
        f"rejects differ: missing {set(feeder.bad) - set(sources)}, "
        f"extra {set(sources) - set(feeder.bad)}, repeated {len(sources) - len(set(sources))}"
    )
    return {"events": len(ids), "rejected": len(sources), "late": late_added}
