"""``kinesis://STREAM`` into the events table, against moto's Kinesis on 127.0.0.1: every
shard read (parents before children after a split and a merge), every event once, bad
records rejected once under their stream, shard and sequence number, and a re-run after a
crash between the events commit and the ledger commit writes nothing twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from lakehouse.cli.ingest_stream import stream_client
from lakehouse.settings import Settings
from lakehouse.tables import open_tables
from tests.streaming.check import check_exactly_once
from tests.streaming.feeder import Feeder
from tests.writers.events import rows
from writers import EventWriter
from writers.ingest import ingest_source
from writers.ledger import Ledger
from writers.results import IngestResult
from writers.sources.kinesis import KinesisStream, StartFrom, read_committed


def run(settings: Settings, feeder: Feeder, **options: Any) -> tuple[IngestResult, KinesisStream]:
    """One run without --follow, as the CLI does it (small batches by default)."""
    tables = open_tables(settings, create=True)
    client = stream_client(feeder.stream, dict(tables.events.io.properties))
    options.setdefault("max_records", 150)
    source = KinesisStream(feeder.stream, client, **options)
    writer = EventWriter(
        settings, tables=tables, max_records=1 << 62, max_bytes=1 << 62, max_age=1e12
    )
    return ingest_source(source, writer=writer), source


def test_every_shard_to_the_tip_then_resharded_children_after_parents(
    sqlite_settings: Settings, feeder: Feeder
) -> None:
    started = datetime.now(UTC)
    feeder.put_mixed(300)
    first, _ = run(sqlite_settings, feeder)
    assert first.records_rejected == len(feeder.bad) > 0
    check_exactly_once(sqlite_settings, feeder, put_after=started)

    feeder.split()  # 3 open shards, one closed parent holding its records
    feeder.put_mixed(200)
    feeder.merge()  # the two children of the split (or a child and its neighbour)
    feeder.put_mixed(200)
    second, _source = run(sqlite_settings, feeder)
    counts = check_exactly_once(sqlite_settings, feeder, put_after=started)
    assert counts["late"] > 0 and feeder.resent > 0
    assert second.records_rejected == len(feeder.bad) - first.records_rejected

    # the ledger knows where each shard stands: closed shards are finished
    tables = open_tables(sqlite_settings, create=False)
    done = read_committed(Ledger(tables.ingested), feeder.stream).after
    listed = feeder.client.list_shards(StreamName=feeder.stream)["Shards"]
    assert len(listed) == 2 + 2 + 1
    for shard in listed:
        ending = shard["SequenceNumberRange"].get("EndingSequenceNumber")
        if ending is not None:
            assert done[shard["ShardId"]] >= int(ending), shard["ShardId"]

    again, _ = run(sqlite_settings, feeder)  # at the tip: nothing more
    assert (again.records_read, again.commits) == (0, 0)


def test_children_wait_for_their_parents_in_the_same_run(
    sqlite_settings: Settings, feeder: Feeder
) -> None:
    """After a split, a key's later records are in a child shard. The children are read
    only once the parent's end is committed: never in the parent's batch, always in a
    later one (the batch limit is high: everything could have gone into one batch)."""
    feeder.put_mixed(120)
    feeder.split()
    feeder.put_mixed(120)
    result, _ = run(sqlite_settings, feeder, max_records=100_000)
    check_exactly_once(sqlite_settings, feeder)
    listed = feeder.client.list_shards(StreamName=feeder.stream)["Shards"]
    parent = next(
        s["ShardId"] for s in listed if "EndingSequenceNumber" in s["SequenceNumberRange"]
    )
    children = {s["ShardId"] for s in listed if s.get("ParentShardId") == parent}
    assert len(children) == 2
    tables = open_tables(sqlite_settings, create=False)
    ledger = rows(tables.ingested).to_pylist()
    when = {r["batch_key"]: r["ingested_at"] for r in ledger}
    shard_of = lambda r: r["source"].split("/")[3]  # noqa: E731
    parent_batches = {r["batch_key"] for r in ledger if shard_of(r) == parent}
    child_batches = {r["batch_key"] for r in ledger if shard_of(r) in children}
    assert parent_batches and child_batches and not parent_batches & child_batches
    assert max(when[k] for k in parent_batches) < min(when[k] for k in child_batches)
    assert result.commits == 2


@pytest.mark.parametrize("more_after_crash", [False, True])
def test_crash_between_the_events_commit_and_the_ledger_commit(
    sqlite_settings: Settings,
    feeder: Feeder,
    monkeypatch: pytest.MonkeyPatch,
    more_after_crash: bool,
) -> None:
    """The re-run reads from the last committed positions again. With nothing new the
    first batch is formed the same (same key: nothing written again); with new records
    it is formed differently and the events already written are dropped by event-level
    dedupe, the rejects by the rejects' dedupe (same record, same line)."""
    feeder.put_mixed(150)
    calls = {"n": 0}
    record = Ledger.record

    def crash_on_last(self: Ledger, *args: Any, **kwargs: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 3:  # batches of 60, 60 and 30 records: the last ended at the tip
            raise RuntimeError("killed between the events commit and the ledger commit")
        record(self, *args, **kwargs)

    monkeypatch.setattr(Ledger, "record", crash_on_last)
    with pytest.raises(RuntimeError, match="killed"):
        run(sqlite_settings, feeder, max_records=60)
    monkeypatch.setattr(Ledger, "record", record)
    if more_after_crash:
        feeder.put_mixed(60)
    result, _ = run(sqlite_settings, feeder, max_records=60)
    check_exactly_once(sqlite_settings, feeder)
    if not more_after_crash:  # the same batch again: found by its key, nothing written
        assert result.commits == 1 and result.records_written == 0
        assert result.duplicates_dropped == result.records_read - result.records_rejected > 0


def test_crash_in_the_first_batch_after_a_bad_record(
    sqlite_settings: Settings, feeder: Feeder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same, when the first batch holds every bad record and more arrive before the re-run."""
    feeder.put_mixed(120)
    record = Ledger.record

    def crash(self: Ledger, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("killed before the ledger commit")

    monkeypatch.setattr(Ledger, "record", crash)
    with pytest.raises(RuntimeError, match="killed"):
        run(sqlite_settings, feeder, max_records=10_000)
    monkeypatch.setattr(Ledger, "record", record)
    feeder.put_mixed(40)
    run(sqlite_settings, feeder, max_records=10_000)
    check_exactly_once(sqlite_settings, feeder)


def test_from_latest_starts_at_the_first_run_even_if_it_read_nothing(
    sqlite_settings: Settings, feeder: Feeder
) -> None:
    feeder.put_mixed(30)
    before = dict(feeder.events)
    feeder.events.clear()
    feeder.late.clear()
    feeder.no_server_ts.clear()
    feeder.bad.clear()
    first, _ = run(sqlite_settings, feeder, start=StartFrom.parse("latest"))
    assert first.records_read == 0
    feeder.put_mixed(50)  # after the first run: read by the next one, whatever its --from
    run(sqlite_settings, feeder, start=StartFrom.parse("trim-horizon"))
    check_exactly_once(sqlite_settings, feeder)
    assert before and not set(before) & set(feeder.events)


def test_from_a_time(sqlite_settings: Settings, feeder: Feeder) -> None:
    feeder.put_mixed(30)
    old = set(feeder.events)
    cut = datetime.now(UTC) + timedelta(seconds=1)
    while datetime.now(UTC) < cut + timedelta(milliseconds=50):
        pass
    for collection in (feeder.events, feeder.bad):
        collection.clear()
    feeder.late.clear()
    feeder.no_server_ts.clear()
    feeder.put_mixed(40)
    run(sqlite_settings, feeder, start=StartFrom.parse(cut.isoformat()))
    check_exactly_once(sqlite_settings, feeder)
    assert old and not old & set(feeder.events)


def test_the_driver_does_not_ask_the_ledger_again_per_batch(
    sqlite_settings: Settings, feeder: Feeder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stream's positions are new by construction (read after the highest committed
    sequence of each shard): its plan says so, and the driver makes no lookup per batch."""
    feeder.put_mixed(150)
    asked: list[list[str]] = []
    among = Ledger.committed_among

    def counted(self: Ledger, ids: Any) -> dict[str, int]:
        asked.append(list(ids))
        return among(self, asked[-1])

    monkeypatch.setattr(Ledger, "committed_among", counted)
    first, _ = run(sqlite_settings, feeder, max_records=60)
    feeder.put_mixed(30)
    second, _ = run(sqlite_settings, feeder, max_records=60)
    check_exactly_once(sqlite_settings, feeder)
    assert first.commits >= 3 and second.commits >= 1 and asked == []
