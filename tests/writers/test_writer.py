"""Writer behaviour on the data itself, on the embedded SQLite and a real PostgreSQL catalog."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from catalog import open_catalog
from lakehouse import schema as spec
from lakehouse.settings import Settings
from lakehouse.tables import load_tables
from tests.writers.events import BASE, assert_sorted, data_files, event, read_file, rows
from writers import EventWriter


def tables(settings: Settings):
    return load_tables(open_catalog(settings), settings.table)


def test_files_are_hour_partitioned_and_sorted(settings: Settings) -> None:
    # shuffled input over ~12 hours; every file must hold one hour, sorted
    records = [event(i, minutes=(i * 37) % 720) for i in range(600)]
    with EventWriter(settings) as writer:
        result = writer.write(list(reversed(records)))
    assert result is None  # buffered: committed on close
    assert writer.totals.records_written == 600
    t = tables(settings).events
    paths = data_files(t)
    assert len(paths) == 12
    for path in paths:
        data = read_file(path)
        hours = set(pc.floor_temporal(data.column("client_ts"), unit="hour").to_pylist())
        assert len(hours) == 1, f"{path} spans hours {hours}"
        assert_sorted(data)
    assert sorted(rows(t).column("event_id").to_pylist()) == sorted(r["event_id"] for r in records)


def test_late_events_get_their_own_marked_snapshot(settings: Settings) -> None:
    on_time = [event(i, minutes=60 * 20 + i) for i in range(50)]  # hour 20, received at once
    late = [
        event(100 + i, minutes=60 * 3 + i, delay=timedelta(hours=17)) for i in range(30)
    ]  # hour 3
    just_in = [
        event(200, minutes=60 * 5 + 59, delay=timedelta(minutes=59))
    ]  # closes 1h after hour end
    with EventWriter(settings) as writer:
        writer.write(on_time + late + just_in)
    assert writer.totals.late_records == 30 and writer.totals.on_time_records == 51
    t = tables(settings).events
    snaps = t.metadata.snapshots
    assert len(snaps) == 2, "on-time and late parts are two snapshots of one commit"
    kinds = {s.summary.additional_properties[spec.SUMMARY_KIND]: s for s in snaps}
    late_snap = kinds["late"]
    props = late_snap.summary.additional_properties
    assert props[spec.SUMMARY_LATE] == "true"
    assert props[spec.SUMMARY_LATE_HOURS] == "2024-05-01T03"
    assert props["added-records"] == "30"
    # the late snapshot's own files hold exactly the late events
    added = t.inspect.entries(snapshot_id=late_snap.snapshot_id)
    late_paths = [
        e["data_file"]["file_path"]
        for e in added.to_pylist()
        if e["status"] == 1 and e["snapshot_id"] == late_snap.snapshot_id
    ]
    late_ids = sorted(i for p in late_paths for i in read_file(p).column("event_id").to_pylist())
    assert late_ids == sorted(e["event_id"] for e in late)
    assert kinds["on-time"].summary.additional_properties["added-records"] == "51"


def test_duplicates_within_and_across_batches_are_dropped(settings: Settings) -> None:
    first = [event(i) for i in range(100)]
    resent = [dict(e, server_ts=(BASE + timedelta(days=3)).isoformat()) for e in first[:20]]
    with EventWriter(settings) as writer:
        assert writer.write(first + first[:10]) is None
        r1 = writer.flush()
        assert writer.write([*resent, event(500)]) is None
        r2 = writer.flush()
    assert r1.records_written == 100 and r1.duplicates_dropped == 10
    assert r2.records_written == 1 and r2.duplicates_dropped == 20
    data = rows(tables(settings).events)
    ids = data.column("event_id").to_pylist()
    assert len(ids) == len(set(ids)) == 101
    # the first receipt is kept, not the resend
    kept = {r["event_id"]: r["server_ts"] for r in data.to_pylist()}
    assert kept["e000000"] == BASE + timedelta(seconds=5)


def test_in_batch_dedupe_keeps_the_earliest_server_ts(settings: Settings) -> None:
    a = event(1, delay=timedelta(minutes=10))
    b = event(1, delay=timedelta(minutes=2))
    with EventWriter(settings) as writer:
        writer.write([a, b])
    data = rows(tables(settings).events).to_pylist()
    assert len(data) == 1 and data[0]["server_ts"] == BASE + timedelta(minutes=7 + 2)


def test_rejects_are_kept_and_counts_reconcile(settings: Settings) -> None:
    good = [event(i) for i in range(10)]
    bad = [
        {"event_id": "x1"},
        dict(event(99), client_ts="soon"),
        dict(event(98), user_id=5),
        "not a dict",
    ]
    with EventWriter(settings) as writer:
        writer.write(good + bad + good[:3], batch_id="batch-42")
    totals = writer.totals
    assert totals.records_read == 17
    assert (totals.records_written, totals.duplicates_dropped, totals.records_rejected) == (
        10,
        3,
        4,
    )
    assert (
        totals.records_read
        == totals.records_written + totals.duplicates_dropped + totals.records_rejected
    )
    rejected = rows(tables(settings).rejected).to_pylist()
    assert len(rejected) == 4
    assert {r["source"] for r in rejected} == {"batch:batch-42"}
    by_raw = {r["raw"]: r["reason"] for r in rejected}
    assert by_raw['{"event_id": "x1"}'] == "missing required field user_id"
    assert "not a record" in by_raw['"not a dict"']
    assert any("not an ISO-8601" in reason for reason in by_raw.values())
    assert any("user_id: expected a string" in reason for reason in by_raw.values())


def test_retrying_a_committed_batch_writes_nothing(settings: Settings) -> None:
    batch = [event(i) for i in range(40)] + [{"event_id": "bad"}]
    with EventWriter(settings) as writer:
        writer.write(batch, batch_id="b-1")
    with EventWriter(settings) as again:
        again.write(batch, batch_id="b-1")
    assert again.totals.already_committed == 1 and again.totals.records_written == 0
    assert again.totals.duplicates_dropped == 40 and again.totals.records_rejected == 1
    t = tables(settings)
    assert rows(t.events).num_rows == 40
    assert rows(t.rejected).num_rows == 1, "the retry did not add its reject twice"
    assert len(t.events.metadata.snapshots) == 1


def test_content_key_makes_plain_retries_idempotent(settings: Settings) -> None:
    batch = [event(i) for i in range(25)]
    for _ in range(2):
        with EventWriter(settings) as writer:
            writer.write(list(reversed(batch)))
    assert writer.totals.already_committed == 1
    assert rows(tables(settings).events).num_rows == 25


def test_new_fields_become_columns_and_conflicts_are_rejected(settings: Settings) -> None:
    with EventWriter(settings) as writer:
        writer.write([event(1, platform="ios", score=1.5, premium=True, level=3)])
    t = tables(settings).events
    fields = {f.name: str(f.field_type) for f in t.schema().fields}
    assert fields["platform"] == "string" and fields["score"] == "double"
    assert fields["premium"] == "boolean" and fields["level"] == "long"
    assert all(
        not t.schema().find_field(n).required for n in ("platform", "score", "premium", "level")
    )
    with EventWriter(settings) as writer:
        writer.write(
            [event(2, platform=7), event(3, score=2), event(4, level=2.5), event(5, platform="web")]
        )
    assert writer.totals.records_rejected == 2 and writer.totals.records_written == 2
    data = {r["event_id"]: r for r in rows(tables(settings).events).to_pylist()}
    assert data["e000003"]["score"] == 2.0  # an integer widens into a double column
    assert data["e000005"]["platform"] == "web"
    reasons = sorted(r["reason"] for r in rows(tables(settings).rejected).to_pylist())
    assert reasons == ["level: column is long, got double", "platform: column is string, got int64"]


def test_arrow_and_polars_input(settings: Settings) -> None:
    n = 50
    arrow = pa.table(
        {
            "event_id": [f"a{i}" for i in range(n)],
            "user_id": ["u"] * n,
            "event_type": ["view"] * n,
            "client_ts": pa.array(
                [BASE + timedelta(minutes=i) for i in range(n)], pa.timestamp("ns", tz="UTC")
            ),
            "server_ts": pa.array(
                [BASE + timedelta(minutes=i, seconds=3) for i in range(n)],
                pa.timestamp("us", tz="UTC"),
            ),
        }
    )
    frame = pl.DataFrame(
        {
            "event_id": ["p1", "p2"],
            "user_id": ["u", "u"],
            "event_type": ["v", "v"],
            "client_ts": ["2024-05-01T01:00:00Z", "2024-05-01T02:00:00+01:00"],
        }
    )
    with EventWriter(settings) as writer:
        writer.write(arrow)
        writer.write(arrow.to_batches()[0])
        writer.write(frame)
    assert writer.totals.records_written == n + 2 and writer.totals.duplicates_dropped == n
    data = {r["event_id"]: r for r in rows(tables(settings).events).to_pylist()}
    assert data["p2"]["client_ts"] == datetime(2024, 5, 1, 1, tzinfo=UTC)


def test_buffer_commits_by_size_and_age(settings: Settings) -> None:
    clock_now = [datetime(2024, 5, 2, tzinfo=UTC)]
    commits = []
    writer = EventWriter(
        settings, max_records=30, max_age=3600, clock=lambda: clock_now[0], on_commit=commits.append
    )
    assert writer.write([event(i) for i in range(20)]) is None
    result = writer.write([event(i) for i in range(20, 35)])
    assert result is not None and result.records_written == 35
    writer.max_age = 0.0
    result = writer.write([event(99)])
    assert result is not None and result.records_written == 1
    assert writer.close().records_written == 36
    assert [c.records_written for c in commits] == [35, 1]


def test_properties_round_trip_as_json(settings: Settings) -> None:
    with EventWriter(settings) as writer:
        writer.write(
            [
                event(
                    1,
                    properties={"page": "/p", "price": 9.5, "tags": ["a", "b"]},
                    device={"os": "ios"},
                )
            ]
        )
    row = rows(tables(settings).events).to_pylist()[0]
    assert json.loads(row["properties"]) == {
        "page": "/p",
        "price": 9.5,
        "tags": ["a", "b"],
        "device": {"os": "ios"},
    }


def test_writer_exit_on_error_still_commits_what_was_handed_over(settings: Settings) -> None:
    with pytest.raises(RuntimeError, match="caller failed"), EventWriter(settings) as writer:
        writer.write([event(i) for i in range(5)])
        raise RuntimeError("caller failed")
    assert rows(tables(settings).events).num_rows == 5
