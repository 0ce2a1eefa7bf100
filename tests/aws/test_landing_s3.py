"""Landing zones on S3 (the moto server): a Firehose-named zone with hostile objects among
good ones, and incremental listing from the ledger's checkpoint (LIST requests counted
by a boto3 event hook)."""

from __future__ import annotations

import gzip
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from catalog import open_catalog
from lakehouse.settings import Settings
from lakehouse.tables import load_tables
from tests.aws.test_s3 import s3_catalog_env
from tests.support.moto import MotoServer
from tests.writers.events import event, rows
from tests.writers.landing_zone import FIREHOSE_TIME, firehose_key, hostile_zone, lines, run_cli
from writers import ingest
from writers.ledger import Ledger
from writers.sources import listing

pytestmark = pytest.mark.aws

MAX_LINE = 1 << 20


@pytest.fixture
def s3_sqlite(
    moto_server: MotoServer, bucket: str, home: Path, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    props = {**moto_server.s3_properties(), "warehouse": f"s3://{bucket}/warehouse"}
    s3_catalog_env(monkeypatch, "lakehouse", props)
    return Settings.from_env()


@pytest.fixture
def list_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The parameters of every ListObjectsV2 request the landing listing makes."""
    calls: list[dict[str, Any]] = []
    real = listing.s3_client

    def counted(io: Any = None) -> Any:
        client = real(io)

        def hook(params: dict[str, Any], **_: Any) -> None:
            calls.append(dict(params))

        client.meta.events.register("provide-client-params.s3.ListObjectsV2", hook)
        return client

    monkeypatch.setattr(listing, "_clients", {})
    monkeypatch.setattr(listing, "s3_client", counted)
    return calls


def test_a_firehose_zone_on_s3_with_hostile_objects(
    s3_sqlite: Settings, moto_server: MotoServer, bucket: str
) -> None:
    s3 = moto_server.client("s3")

    def put(key: str, data: bytes) -> None:
        s3.put_object(Bucket=bucket, Key=f"events/{key}", Body=data)

    zone = hostile_zone(put, max_line=MAX_LINE)
    env = {"LAKEHOUSE_MAX_FILE_BYTES": str(32 << 20), "LAKEHOUSE_MAX_LINE_BYTES": str(MAX_LINE)}
    code, out, err, peak = run_cli(["ingest", f"s3://{bucket}/events/", "--create", "--json"], env)
    assert code == 1, err
    assert "Traceback" not in err and 0 < peak < 1 << 30
    t = load_tables(open_catalog(s3_sqlite), s3_sqlite.table)
    ids = rows(t.events).column("event_id").to_pylist()
    assert len(ids) == len(set(ids)) and set(ids) == zone.good
    rejected = rows(t.rejected).to_pylist()
    for key, words in zone.hostile.items():
        reasons = [r["reason"] for r in rejected if r["source"] == f"s3://{bucket}/events/{key}"]
        assert any(words in reason for reason in reasons), (key, reasons)
    assert json.loads(out)["files"] == 4 + len(zone.hostile)


def _put_hours(s3: Any, bucket: str, hours: int, per_hour: int) -> set[str]:
    ids: set[str] = set()
    n = 0
    for h in range(hours):
        at = FIREHOSE_TIME - timedelta(hours=hours - h)
        for k in range(per_hour):
            batch = [event(n * 3 + i) for i in range(3)]
            ids.update(e["event_id"] for e in batch)
            body = lines(batch)
            gz = k % 2 == 1
            key = "fh/" + firehose_key(at + timedelta(minutes=k), n, gz)
            s3.put_object(Bucket=bucket, Key=key, Body=gzip.compress(body) if gz else body)
            n += 1
    return ids


def test_one_new_object_over_an_ingested_zone_lists_one_page_and_asks_the_ledger_little(
    s3_sqlite: Settings,
    moto_server: MotoServer,
    bucket: str,
    list_calls: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(listing, "LIST_PAGE_SIZE", 20)
    s3 = moto_server.client("s3")
    hours, per_hour = 60, 4
    expected = _put_hours(s3, bucket, hours, per_hour)  # 240 objects over 60 hours
    zone = f"s3://{bucket}/fh/"
    first = ingest([zone], s3_sqlite)
    assert first.files == hours * per_hour
    assert len(list_calls) == hours * per_hour // 20  # the whole prefix, 20 keys a page
    list_calls.clear()

    asked: list[str] = []
    real_among = Ledger.recorded_among

    def spy(self: Ledger, ids: Any) -> dict[str, Any]:
        ids = list(ids)
        asked.extend(ids)
        return real_among(self, ids)

    monkeypatch.setattr(Ledger, "recorded_among", spy)
    new = [event(90_000 + i) for i in range(3)]
    key = "fh/" + firehose_key(FIREHOSE_TIME, 9999, False)
    s3.put_object(Bucket=bucket, Key=key, Body=lines(new))
    second = ingest([zone], s3_sqlite)
    assert second.files == 1 and second.records_written == 3
    assert len(list_calls) == 1 and list_calls[0]["StartAfter"].startswith("fh/")
    # the look-back window (2 h before the last hour): at most 3 hours of keys asked about
    assert f"s3://{bucket}/{key}" in asked and len(asked) <= 3 * per_hour + 1 + 1
    t = load_tables(open_catalog(s3_sqlite), s3_sqlite.table)
    got = rows(t.events).column("event_id").to_pylist()
    assert len(got) == len(set(got)) and set(got) == expected | {e["event_id"] for e in new}

    # a straggler inside the window is found; one older than the window waits for a
    # full listing (--look-back all), which finds it
    inside = "fh/" + firehose_key(FIREHOSE_TIME - timedelta(hours=1, minutes=-30), 8888, False)
    outside = "fh/" + firehose_key(FIREHOSE_TIME - timedelta(hours=30), 7777, False)
    s3.put_object(Bucket=bucket, Key=inside, Body=lines([event(91_000)]))
    s3.put_object(Bucket=bucket, Key=outside, Body=lines([event(92_000)]))
    third = ingest([zone], s3_sqlite)
    assert third.files == 1 and third.records_written == 1
    full = ingest([zone], s3_sqlite, look_back=None)
    assert full.files == 1 and full.records_written == 1


def test_a_zone_without_time_order_is_listed_in_full(
    s3_sqlite: Settings, moto_server: MotoServer, bucket: str, list_calls: list[dict[str, Any]]
) -> None:
    s3 = moto_server.client("s3")
    for k in range(5):
        s3.put_object(Bucket=bucket, Key=f"flat/batch-{k}.json", Body=lines([event(k)]))
    ingest([f"s3://{bucket}/flat/"], s3_sqlite)
    s3.put_object(Bucket=bucket, Key="flat/a-late-name.json", Body=lines([event(50)]))
    list_calls.clear()
    again = ingest([f"s3://{bucket}/flat/"], s3_sqlite)
    assert (again.files, again.files_skipped) == (1, 5)  # a key sorting first is still found
    assert all("StartAfter" not in call for call in list_calls)


def test_an_object_put_again_larger_is_read_on_with_a_range_request(
    s3_sqlite: Settings, moto_server: MotoServer, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.writers.test_landing_changes import Reads, appended_in_three_steps
    from writers.sources import reading

    s3 = moto_server.client("s3")
    reads = Reads()
    part = reading._read_range
    whole = reading._read

    def read(filesystem: Any, source: Any) -> bytes:
        data = whole(filesystem, source)
        reads.sizes.append(len(data))
        return data

    def read_range(filesystem: Any, source: Any, lo: int, hi: int) -> bytes:
        data = part(filesystem, source, lo, hi)
        reads.sizes.append(len(data))
        return data

    monkeypatch.setattr(reading, "_read", read)
    monkeypatch.setattr(reading, "_read_range", read_range)

    def put(data: bytes) -> None:  # S3 has no append: the producer puts the whole object
        s3.put_object(Bucket=bucket, Key="drop/part-0001", Body=data)

    appended_in_three_steps(put, f"s3://{bucket}/drop/", s3_sqlite, reads)


def test_an_object_rewritten_at_the_same_size_has_a_new_etag_and_is_read_again(
    s3_sqlite: Settings, moto_server: MotoServer, bucket: str
) -> None:
    from tests.writers.test_landing_changes import rewritten_at_the_same_size

    s3 = moto_server.client("s3")

    def put(data: bytes) -> None:
        s3.put_object(Bucket=bucket, Key="drop/part-0001", Body=data)

    rewritten_at_the_same_size(put, f"s3://{bucket}/drop/", s3_sqlite)
