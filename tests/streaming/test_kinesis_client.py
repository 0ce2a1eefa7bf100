"""The stream source's calls under throttling and expired iterators (a scripted client:
AWS errors on cue), and what a record may hold (one event, NDJSON, gzip, damage)."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError

from lakehouse.errors import ConfigError
from writers.sources.kinesis import KinesisStream, stream_name
from writers.sources.kinesis_client import StreamClient, StreamUnavailable
from writers.sources.kinesis_records import decode

ARRIVED = datetime(2026, 1, 1, tzinfo=UTC)


def _error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}}, "GetRecords")


class Scripted:
    """One open shard of ``total`` records; ``faults`` lists the errors raised by the next
    GetRecords calls (None: answer normally). Iterators are ``"<after>"``."""

    def __init__(self, total: int, faults: list[str | None]) -> None:
        self.total = total
        self.faults = faults
        self.iterators: list[dict[str, Any]] = []

    def list_shards(self, **_: Any) -> dict[str, Any]:
        return {
            "Shards": [
                {
                    "ShardId": "shard-0",
                    "HashKeyRange": {"StartingHashKey": "0", "EndingHashKey": "9"},
                    "SequenceNumberRange": {"StartingSequenceNumber": "1"},
                }
            ]
        }

    def get_shard_iterator(self, **kwargs: Any) -> dict[str, Any]:
        self.iterators.append(kwargs)
        return {"ShardIterator": str(int(kwargs.get("StartingSequenceNumber", 0)))}

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:
        fault = self.faults.pop(0) if self.faults else None
        if fault is not None:
            raise _error(fault)
        after = int(ShardIterator)
        seqs = list(range(after + 1, min(self.total, after + min(Limit, 7)) + 1))
        records = [
            {
                "Data": json.dumps(
                    {
                        "event_id": f"e{s}",
                        "user_id": "u",
                        "event_type": "v",
                        "client_ts": "2026-01-01T00:00:00Z",
                    }
                ).encode(),
                "SequenceNumber": str(s),
                "ApproximateArrivalTimestamp": ARRIVED,
            }
            for s in seqs
        ]
        last = seqs[-1] if seqs else after
        return {"Records": records, "NextShardIterator": str(last), "MillisBehindLatest": 0}


class FakeLedger:
    def committed_with_prefix(self, prefix: str) -> list[tuple[str, int]]:
        return []


def read_all(client: Scripted, **kwargs: Any) -> list[str]:
    calls = StreamClient(client, "s", initial_wait=0.001, max_wait=0.002, **kwargs)
    source = KinesisStream("s", calls, max_records=10)
    ids = []
    for batch in source.plan(FakeLedger()).batches:  # type: ignore[arg-type]
        for payload in batch.payloads:
            ids.extend(p.position.id for p in payload.parts or ())
    return ids


def test_throttling_and_expired_iterators_lose_nothing() -> None:
    faults = [
        "ProvisionedThroughputExceededException",
        None,
        "ExpiredIteratorException",
        "LimitExceededException",
        "ProvisionedThroughputExceededException",
        None,
        "ExpiredIteratorException",
    ]
    client = Scripted(30, faults)
    ids = read_all(client)
    assert ids == [f"kinesis://s/shard-0/{s}" for s in range(1, 31)]
    # each expired iterator was asked for again after the last record read
    after = [int(i.get("StartingSequenceNumber", -1)) for i in client.iterators]
    assert after[0] == -1 and after[1:] == sorted(after[1:]) and len(after) == 3
    assert all(i["ShardIteratorType"] == "AFTER_SEQUENCE_NUMBER" for i in client.iterators[1:])


def test_throttling_that_does_not_end_is_an_outage_to_retry() -> None:
    client = Scripted(5, ["ProvisionedThroughputExceededException"] * 20)
    with pytest.raises(StreamUnavailable) as caught:
        read_all(client, attempts=3)
    assert caught.value.retryable


def test_a_missing_stream_is_a_configuration_error() -> None:
    class Missing(Scripted):
        def list_shards(self, **_: Any) -> dict[str, Any]:
            raise _error("ResourceNotFoundException")

    with pytest.raises(ConfigError, match="'s'"):
        read_all(Missing(1, []))
    with pytest.raises(Exception, match="kinesis://STREAM"):
        stream_name("kinesis://a/b")


def test_what_a_record_may_hold() -> None:
    one = {"event_id": "a", "n": 1}
    lines = [json.dumps({"event_id": str(i)}) for i in range(3)]
    assert decode(json.dumps(one).encode()) == (json.dumps(one).encode() + b"\n", None)
    assert decode("\n".join(lines).encode()) == (("\n".join(lines) + "\n").encode(), None)
    # several gzip members: their contents joined, as gunzip does
    zipped = gzip.compress(("\n".join(lines[:2]) + "\n").encode()) + gzip.compress(
        lines[2].encode()
    )
    assert decode(zipped) == (("\n".join(lines) + "\n").encode(), None)
    pretty = json.dumps(one, indent=2).encode()
    assert decode(pretty) == (b'{"event_id":"a","n":1}\n', None)
    cut = gzip.compress(("\n".join(lines) + "\n").encode())[:-12]
    data, damage = decode(cut)
    prefixes = {"".join(f"{line}\n" for line in lines[:k]).encode() for k in range(4)}
    assert damage is not None and data in prefixes  # the complete lines before the damage
    assert decode(b"\x1f\x8b\x08\x00garbage")[1] is not None
