"""The writer's flush, its batch keys, its lifecycle and its record of rejects, each
checked field by field against values counted by hand from the input and against what
the tables hold (read with pyiceberg's public API, not the writer's code)."""

from __future__ import annotations

import json
import logging
import os
import re
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from catalog import open_catalog
from lakehouse import summary
from lakehouse.settings import Settings
from lakehouse.tables import ensure_tables, load_tables
from tests.writers.events import BASE, event, rows
from writers import EventWriter
from writers import writer as writer_module
from writers.parse import parse_records
from writers.rejects import Reject, rejects_to_arrow

LATE = timedelta(hours=3)  # the default lateness is one hour after the hour's end


def _snapshots(settings: Settings) -> list[dict[str, str]]:
    events = load_tables(open_catalog(settings), settings.table).events
    return [
        {"id": str(s.snapshot_id), **(s.summary.additional_properties if s.summary else {})}
        for s in events.metadata.snapshots
    ]


def test_a_flush_reports_every_count_and_the_table_agrees(home: Path) -> None:
    settings = Settings.from_env()
    bad = {"event_id": "bad", "event_type": "view", "client_ts": "2024-05-01T00:01:00Z"}
    records = [
        event(0),  # 00:00, on time
        event(1),  # 00:07
        event(2, delay=LATE),  # 00:14, received 03:14: late
        event(1),  # a duplicate of the second
        bad,  # no user_id
        event(9, minutes=70),  # 01:10, on time
    ]
    with EventWriter(settings) as writer:
        writer.write(records, batch_id="first")
        result = writer.flush()
    assert (result.records_read, result.records_written) == (6, 4)
    assert (result.duplicates_dropped, result.records_rejected) == (1, 1)
    assert dict(result.rejected_by_reason) == {"missing required field user_id": 1}
    assert (result.late_records, result.on_time_records) == (1, 3)
    assert result.late_hours == ("2024-05-01T00",)
    assert (result.already_committed, result.new_columns, result.fields_folded) == (0, (), 0)
    assert result.warnings == () and result.seconds > 0
    snaps = _snapshots(settings)
    assert [s[summary.KIND] for s in snaps] == [summary.KIND_ON_TIME, summary.KIND_LATE]
    assert result.snapshot_ids == tuple(int(s["id"]) for s in snaps)
    assert result.batch_keys == (snaps[0][summary.BATCH_KEY],)
    host, pid = re.escape(socket.gethostname()), os.getpid()
    assert snaps[0][summary.WRITER] == snaps[1][summary.WRITER] == writer.writer_id
    assert re.fullmatch(rf"{host}:{pid}:[0-9a-f]{{8}}", writer.writer_id)
    events = load_tables(open_catalog(settings), settings.table).events
    assert sorted(rows(events).column("event_id").to_pylist()) == [
        "e000000",
        "e000001",
        "e000002",
        "e000009",
    ]
    assert writer.totals.records_read == 6 and writer.totals.records_written == 4


def test_a_batch_that_landed_already_is_counted_as_duplicates(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings.from_env()
    with EventWriter(settings) as writer:
        first = writer.write([event(i) for i in range(3)], batch_id="b1")
        first = writer.flush()
    handed: list[str] = []
    real = writer_module.commit.commit_events

    def spy(*args: Any, **kwargs: Any) -> list[int]:
        handed.append(kwargs["key"])
        return real(*args, **kwargs)

    monkeypatch.setattr(writer_module.commit, "commit_events", spy)
    with EventWriter(settings) as again:
        again.write([event(i) for i in range(3)], batch_id="b1")
        second = again.flush()
    assert handed == []  # a landed batch is not handed to the commit step again
    assert (second.records_read, second.records_written, second.duplicates_dropped) == (3, 0, 3)
    assert second.already_committed == 1 and first.already_committed == 0
    assert second.snapshot_ids == first.snapshot_ids and len(first.snapshot_ids) == 1
    assert second.batch_keys == first.batch_keys
    assert len(_snapshots(settings)) == 1


def test_all_late_or_all_on_time_makes_one_snapshot_of_that_kind(home: Path) -> None:
    settings = Settings.from_env()
    with EventWriter(settings) as writer:
        late = writer.write([event(i, delay=LATE) for i in range(3)])
        late = writer.flush()
        on_time = writer.write([event(i) for i in range(3, 5)])
        on_time = writer.flush()
    assert (late.late_records, late.on_time_records, len(late.snapshot_ids)) == (3, 0, 1)
    assert (on_time.late_records, on_time.on_time_records) == (0, 2)
    assert on_time.late_hours == ()
    kinds = [s[summary.KIND] for s in _snapshots(settings)]
    assert kinds == [summary.KIND_LATE, summary.KIND_ON_TIME]


def test_batch_ids_make_the_key_whatever_their_order(home: Path) -> None:
    settings = Settings.from_env()
    with EventWriter(settings) as one:
        one.write([event(0)], batch_id="a")
        one.write([event(1)], batch_id="b")
        first = one.flush()
    with EventWriter(settings) as two:
        two.write([event(1)], batch_id="b")
        two.write([event(0)], batch_id="a")
        second = two.flush()
    (key,) = first.batch_keys
    assert re.fullmatch(r"b-[0-9a-f]{32}", key)
    assert second.batch_keys == (key,) and second.already_committed == 1
    with EventWriter(settings) as three:  # one write without an id: the content decides
        three.write([event(0)], batch_id="a")
        three.write([event(2)])
        third = three.flush()
    assert re.fullmatch(r"c-[0-9a-f]{32}", third.batch_keys[0])
    assert third.records_written == 1 and third.duplicates_dropped == 1


def test_rejects_change_the_content_key_whatever_their_order(home: Path) -> None:
    settings = Settings.from_env()
    bad = [
        {"event_id": "x1", "event_type": "v", "client_ts": "2024-05-01T00:00:00Z"},
        {"event_id": "x2", "user_id": "u", "event_type": "v", "client_ts": "nope"},
    ]
    keys = []
    for extra in ([], bad, bad[::-1], bad[:1]):
        with EventWriter(settings) as writer:
            writer.write([event(0), *extra])
            keys.append(writer.flush().batch_keys[0])
    plain, both, reversed_, one = keys
    assert both == reversed_
    assert len({plain, both, one}) == 3
    assert all(re.fullmatch(r"c-[0-9a-f]{32}", k) for k in keys)


def test_the_rejects_table_holds_each_reject_once(home: Path) -> None:
    settings = Settings.from_env()
    bad = {"event_id": "x", "event_type": "v", "client_ts": "2024-05-01T00:00:00Z"}
    with EventWriter(settings) as writer:
        writer.write([event(0), bad], batch_id="r")
        result = writer.flush()
    rejected = load_tables(open_catalog(settings), settings.table).rejected
    stored = rows(rejected).to_pylist()
    assert [(r["reason"], r["batch_key"]) for r in stored] == [
        ("missing required field user_id", result.batch_keys[0])
    ]
    kinds = [
        s.summary.additional_properties[summary.KIND]
        for s in rejected.metadata.snapshots
        if s.summary
    ]
    assert kinds == [summary.KIND_REJECTS]


def test_file_rejects_already_recorded_are_not_recorded_again(home: Path) -> None:
    settings = Settings.from_env()
    rejected = ensure_tables(open_catalog(settings), settings.table)[0].rejected
    fresh = [Reject("r1", "s1", 3, "x"), Reject("whole", "s2", None, None)]
    assert writer_module._not_yet_rejected(rejected, fresh) == fresh  # an empty table
    at = datetime(2024, 5, 1, tzinfo=UTC)
    rejected.append(rejects_to_arrow(fresh, batch_key="k", at=at))
    candidates = [
        Reject("r1", "s1", 3, "x"),  # the same line: recorded
        Reject("other", "s1", 3, "y"),  # the same line, another reason: recorded too
        Reject("r1", "s1", 4, "x"),  # another line
        Reject("whole", "s2", None, None),  # the same whole-file reason: recorded
        Reject("else", "s2", None, None),  # another whole-file reason
        Reject("r1", "s3", None, "raw"),  # a record without a line: never looked up
        Reject("whole", "s2", None, "raw"),  # a record, not the file: not a file reject
    ]
    kept = writer_module._not_yet_rejected(rejected, candidates)
    assert kept == [candidates[2], candidates[4], candidates[5], candidates[6]]
    only_raw = [Reject("r1", "s1", None, "raw")]
    assert writer_module._not_yet_rejected(rejected, only_raw) == only_raw


def test_a_closed_writer_refuses_writes_and_closes_once(home: Path) -> None:
    settings = Settings.from_env()
    seen: list[int] = []
    writer = EventWriter(settings, on_commit=lambda r: seen.append(r.records_written))
    writer.write([event(0), event(1)])
    totals = writer.close()
    assert (totals.records_written, seen) == (2, [2])
    assert writer.close().records_written == 2
    assert seen == [2]
    with pytest.raises(RuntimeError, match=r"^this writer is closed$"):
        writer.write([event(2)])
    assert EventWriter(settings).flush().records_read == 0


def test_leaving_on_an_error_commits_the_buffer_and_keeps_the_error(
    home: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings.from_env()
    with pytest.raises(KeyError), EventWriter(settings) as writer:
        writer.write([event(0)])
        raise KeyError("boom")
    events = load_tables(open_catalog(settings), settings.table).events
    assert rows(events).column("event_id").to_pylist() == ["e000000"]

    def broken(*args: Any, **kwargs: Any) -> None:
        raise OSError("disk gone")

    with (
        caplog.at_level(logging.ERROR, logger="writers.writer"),
        pytest.raises(KeyError),
        EventWriter(settings) as writer,
    ):
        writer.write([event(1)])
        monkeypatch.setattr(writer_module.commit, "commit_events", broken)
        raise KeyError("boom")
    assert [r.getMessage() for r in caplog.records if r.name == "writers.writer"] == [
        "could not commit the buffer while handling KeyError"
    ]


def test_the_log_line_of_a_commit(home: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings.from_env()
    with caplog.at_level(logging.INFO, logger="writers.writer"), EventWriter(settings) as w:
        w.write([event(0), event(0), event(1, delay=LATE), {"event_id": "x"}], batch_id="L")
        result = w.flush()
    (line,) = [r.getMessage() for r in caplog.records if r.name == "writers.writer"]
    pattern = rf"committed batch {result.batch_keys[0]}: 2 written \(1 late\), 1 duplicates, "
    assert re.fullmatch(pattern + r"1 rejected in \d+\.\d\ds", line), line


def test_an_empty_buffer_is_never_due(home: Path) -> None:
    writer = EventWriter(Settings.from_env(), max_age=0)
    assert writer.due() is False and writer.flush_if_due() is None
    writer.write([{"event_id": "only-bad"}])  # read, rejected: still a record to commit
    assert writer._buffer.records == 0  # committed at once (age 0)
    assert writer.totals.records_read == 1 and writer.totals.records_rejected == 1


def test_per_source_receipt_times_need_a_line_map(home: Path) -> None:
    writer = EventWriter(Settings.from_env())
    parsed = parse_records([event(0)], "batch:x")
    times = [BASE + timedelta(hours=1)]
    with pytest.raises(
        ValueError, match=r"^per-source receipt times need NDJSON input parsed with a line map$"
    ):
        writer.add_parsed(parsed, receipt_time=times)
    assert writer._buffer.records == 0 and writer._buffer.opened is None


def test_the_buffer_counts_records_and_bytes_of_kept_rows(home: Path) -> None:
    writer = EventWriter(Settings.from_env(), max_records=100, max_bytes=10**9, max_age=3600)
    writer.write([event(0), event(1), {"event_id": "bad"}], batch_id="x")
    buf = writer._buffer
    assert (buf.records, len(buf.rejects), buf.batch_ids) == (3, 1, ["x"])
    assert buf.nbytes == sum(t.nbytes for t, _ in buf.pieces) and buf.nbytes > 0
    assert sum(t.num_rows for t, _ in buf.pieces) == 2
    opened = buf.opened
    writer.write([event(2)])
    assert buf.opened == opened and buf.records == 4 and buf.batch_ids == ["x", None]
    assert isinstance(pa.concat_tables([t for t, _ in buf.pieces]), pa.Table)
    writer.flush()
    assert (buf.records, buf.nbytes, buf.pieces, buf.rejects, buf.opened) == (0, 0, [], [], None)


def test_each_reject_names_where_it_came_from(home: Path) -> None:
    settings = Settings.from_env()
    bad = {"event_id": "x", "event_type": "v", "client_ts": "2024-05-01T00:00:00Z"}
    with EventWriter(settings) as writer:
        writer.write([bad])
        writer.write([dict(bad, event_id="y")], batch_id="b7")
        writer.write([dict(bad, event_id="z")], source="file:///zone/a.ndjson")
    rejected = load_tables(open_catalog(settings), settings.table).rejected
    by_id = dict(zip(*rows(rejected).select(["raw", "source"]).to_pydict().values(), strict=True))
    sources = {json.loads(raw)["event_id"]: source for raw, source in by_id.items()}
    assert (sources["y"], sources["z"]) == ("batch:b7", "file:///zone/a.ndjson")
    assert re.fullmatch(r"batch:[0-9a-f]{12}", sources["x"]), sources


def test_keys_of_different_batches_differ_and_stay_stable(home: Path) -> None:
    """The key is the idempotency contract of a retried batch, kept in the snapshot
    summaries: batch ids give ``b-`` and the BLAKE2b-128 of the sorted ids joined by NUL,
    so a batch retried by a later version still finds its key."""
    import hashlib

    settings = Settings.from_env()
    bad = {"event_id": "x", "event_type": "v", "client_ts": "2024-05-01T00:00:00Z"}
    results = []
    with EventWriter(settings) as writer:
        for batch_ids, good in ((["a", "b"], 0), (["c"], 1)):
            for batch_id in batch_ids:
                writer.write([event(good)], batch_id=batch_id)
            results.append(writer.flush())
        for good in (2, 3):  # the same reject beside different rows: two batches
            writer.write([event(good), bad])
            results.append(writer.flush())
    keys = [r.batch_keys[0] for r in results]
    expected = "b-" + hashlib.blake2b(b"a\x00b", digest_size=16).hexdigest()
    assert keys[0] == expected
    assert keys[1] == "b-" + hashlib.blake2b(b"c", digest_size=16).hexdigest()
    assert len(set(keys)) == 4
    assert [r.records_written for r in results] == [1, 1, 1, 1]
    events = load_tables(open_catalog(settings), settings.table).events
    assert sorted(rows(events).column("event_id").to_pylist()) == [f"e{i:06d}" for i in range(4)]


def test_the_key_of_a_batch_with_rejects_keeps_its_documented_form(home: Path) -> None:
    """``c-`` and the BLAKE2b-128 of the content key, then of each reject's raw text (an
    empty one when it has none), a NUL and its reason, in the order of (raw, reason): a
    batch retried by a later version still finds its key."""
    import hashlib

    from writers.commit import content_key
    from writers.parse import Parsed

    settings = Settings.from_env()
    no_user = {"event_id": "x", "event_type": "v", "client_ts": "2024-05-01T00:00:00Z"}
    bad_time = dict(no_user, user_id="u", client_ts="nope")
    with EventWriter(settings) as writer:
        writer.write([no_user, event(0), bad_time])
        whole_file = Parsed(
            failures=[
                ("file:///zone/f.gz", None, None, "truncated gzip"),
                # a raw text that sorts after the empty one and before letters
                ("file:///zone/g.ndjson", 3, "42", "not a JSON object"),
            ]
        )
        whole_file.records = 2
        writer.add_parsed(whole_file, receipt_time=BASE)
        result = writer.flush()
    assert (result.records_written, result.records_rejected) == (1, 4)
    rejected = load_tables(open_catalog(settings), settings.table).rejected
    stored = sorted(
        (r["raw"] or "", r["reason"]) for r in rows(rejected).select(["raw", "reason"]).to_pylist()
    )
    assert [reason for _, reason in stored] == [
        "truncated gzip",
        "not a JSON object",
        "missing required field user_id",
        "client_ts: not an ISO-8601 timestamp: 'nope'",
    ]
    events = load_tables(open_catalog(settings), settings.table).events
    digest = hashlib.blake2b(content_key(rows(events)).encode(), digest_size=16)
    for raw, reason in stored:
        digest.update(raw.encode() + b"\x00" + reason.encode())
    assert result.batch_keys == ("c-" + digest.hexdigest(),)


def test_a_record_with_a_lone_surrogate_is_rejected_and_the_others_land(home: Path) -> None:
    settings = Settings.from_env()
    odd = {"event_id": "a\ud800", "event_type": "v", "client_ts": "2024-05-01T00:00:00Z"}
    with EventWriter(settings) as writer:
        writer.write([event(0), odd])
        result = writer.flush()
    assert (result.records_written, result.records_rejected) == (1, 1)


def test_rejects_found_after_parsing_keep_their_line(home: Path) -> None:
    settings = Settings.from_env()
    lines = [event(0), {"event_id": "x", "event_type": "v", "client_ts": "2024-05-01T00:00:00Z"}]
    data = "\n".join(json.dumps(r) for r in lines).encode()
    with EventWriter(settings) as writer:
        writer.write(data, source="file:///zone/a.ndjson")
    rejected = load_tables(open_catalog(settings), settings.table).rejected
    stored = rows(rejected).select(["source", "line", "reason"]).to_pylist()
    assert stored == [
        {"source": "file:///zone/a.ndjson", "line": 2, "reason": "missing required field user_id"}
    ]


def test_one_on_time_row_is_on_time_and_hours_are_scanned_once(home: Path) -> None:
    settings = Settings.from_env()
    with EventWriter(settings) as writer:
        first = writer.write([event(0)])
        first = writer.flush()
        second = writer.write([event(1), event(0)])  # the same hour, one id again
        second = writer.flush()
    assert (first.on_time_records, first.late_records, first.late_hours) == (1, 0, ())
    assert (second.records_written, second.duplicates_dropped) == (1, 1)
    assert [s[summary.KIND] for s in _snapshots(settings)] == [summary.KIND_ON_TIME] * 2
    assert writer._committed.scans == 1  # the hour's ids were read once, then kept


def test_a_writers_own_commits_keep_its_cache_current(home: Path) -> None:
    """Once an hour is cached, the writer's own commits are added to it (``record``):
    the next flush into the hour reads nothing and still drops a resend of them."""
    settings = Settings.from_env()
    with EventWriter(settings) as writer:
        writer.write([event(0)])
        writer.flush()  # an empty table: nothing to read
        writer.write([event(1), event(0)])
        assert writer.flush().duplicates_dropped == 1
        assert writer._committed.scans == 1  # the hour is read and cached
        writer.write([event(2), event(1)])  # e000001 was committed by this writer
        third = writer.flush()
    assert (third.records_written, third.duplicates_dropped) == (1, 1)
    assert writer._committed.scans == 1  # no rescan after its own commit


@pytest.mark.parametrize(
    ("point", "rejects_stored"),
    [("write.events-committed", 0), ("write.rejects-committed", 1)],
)
def test_the_flush_fault_points_stop_after_their_step(
    home: Path, monkeypatch: pytest.MonkeyPatch, point: str, rejects_stored: int
) -> None:
    from lakehouse import faults

    settings = Settings.from_env()
    monkeypatch.setattr(faults, "_hits", {})
    monkeypatch.setenv(faults.ENV, f"{point}:1:raise")
    bad = {"event_id": "x", "event_type": "v", "client_ts": "2024-05-01T00:00:00Z"}
    writer = EventWriter(settings)
    writer.write([event(0), bad])
    with pytest.raises(faults.FaultInjected, match=rf"^fault point {re.escape(point)} \(hit 1\)$"):
        writer.flush()
    tables = load_tables(open_catalog(settings), settings.table)
    assert rows(tables.events).column("event_id").to_pylist() == ["e000000"]
    stored = rows(tables.rejected).num_rows if tables.rejected.current_snapshot() else 0
    assert stored == rejects_stored


def test_a_folding_warning_is_logged_with_the_table_and_the_time_is_measured(
    home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import time

    from lakehouse import schema as spec

    settings = Settings.from_env(max_columns=len(spec.CORE_COLUMNS) + 1)
    with caplog.at_level(logging.WARNING, logger="writers.writer"), EventWriter(settings) as w:
        w.write([event(0, a=1, b=2), event(1, a=3)])
        before = time.perf_counter()
        result = w.flush()
        elapsed = time.perf_counter() - before
    assert result.new_columns == ("a",) and result.fields_folded == 1
    (warning,) = result.warnings
    assert "LAKEHOUSE_MAX_COLUMNS=" in warning
    logged = [r.getMessage() for r in caplog.records if r.name == "writers.writer"]
    assert logged == [f"{w.tables.events.name()}: {warning}"]
    assert 0 < result.seconds <= elapsed


def test_the_receipt_time_is_the_writers_clock_and_the_skew_its_settings(home: Path) -> None:
    skew = "client_ts is more than 1:00:00 after its receipt time (device clock skew)"
    settings = Settings.from_env()
    ahead = event(0, minutes=90)  # 01:30, received at 00:00 by this writer's clock
    del ahead["server_ts"]  # (the receipt time then stands for it)
    with EventWriter(settings, clock=lambda: BASE) as writer:
        writer.write([ahead, event(1, minutes=-30)])
        result = writer.flush()
    assert (result.records_written, result.records_rejected) == (1, 1)
    rejected = load_tables(open_catalog(settings), settings.table).rejected
    assert rows(rejected).column("reason").to_pylist() == [skew]


def test_the_default_clock_is_utc_whatever_the_local_zone(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    settings = Settings.from_env()
    future = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    record = {"event_id": "f", "user_id": "u", "event_type": "v", "client_ts": future}
    monkeypatch.setenv("TZ", "Asia/Tokyo")  # nine hours ahead of UTC
    time.tzset()
    try:
        with EventWriter(settings) as writer:
            writer.write([record])
            result = writer.flush()
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert (result.records_written, result.records_rejected) == (0, 1)
