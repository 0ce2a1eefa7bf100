"""A test producer for a Kinesis stream that remembers what it put: the oracle of the
stream tests. Records are of every accepted kind (one event, NDJSON lines, gzip with
several events, a pretty-printed event) and of the bad kinds (invalid JSON, an event
without an id, corrupt gzip), with resends and late events mixed in."""

from __future__ import annotations

import gzip
import itertools
import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

BASE = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)


def event(i: int, *, late: bool = False, server_ts: bool = True) -> dict[str, Any]:
    """Event ``i``: on time (server_ts seconds after client_ts), late (received two days
    after client_ts, its hour long closed), or without server_ts (received = arrival)."""
    client = BASE + timedelta(seconds=i * 13 % 7200)
    if not server_ts:  # received when put: a recent event, so on time
        client = datetime.now(UTC) - timedelta(seconds=30)
    if late:
        client -= timedelta(days=2)
    out: dict[str, Any] = {
        "event_id": f"k{i:07d}",
        "user_id": f"u{i % 7}",
        "event_type": "view",
        "client_ts": client.isoformat().replace("+00:00", "Z"),
    }
    if server_ts:
        delay = timedelta(days=2) if late else timedelta(seconds=5)
        out["server_ts"] = (client + delay).isoformat().replace("+00:00", "Z")
    return out


@dataclass
class Feeder:
    client: Any
    stream: str
    events: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> event (first)
    late: set[str] = field(default_factory=set)
    no_server_ts: set[str] = field(default_factory=set)
    bad: dict[str, str] = field(default_factory=dict)  # kinesis://s/shard/seq -> kind
    resent: int = 0
    records: int = 0
    next_id: int = 0
    rng: random.Random = field(default_factory=lambda: random.Random(16))

    @classmethod
    def create(cls, client: Any, stream: str, *, shards: int) -> Feeder:
        client.create_stream(StreamName=stream, ShardCount=shards)
        return cls(client, stream)

    def _take(self, *, late: bool = False, server_ts: bool = True) -> dict[str, Any]:
        e = event(self.next_id, late=late, server_ts=server_ts)
        self.next_id += 1
        self.events[e["event_id"]] = e
        if late:
            self.late.add(e["event_id"])
        if not server_ts:
            self.no_server_ts.add(e["event_id"])
        return e

    def put_mixed(self, count: int) -> None:
        """``count`` records of mixed kinds, in one PutRecords call per 100."""
        batch: list[tuple[bytes, str | None]] = []
        for _ in range(count):
            batch.append(self._record())
            if len(batch) == 100:
                self._put(batch)
                batch = []
        if batch:
            self._put(batch)

    def _record(self) -> tuple[bytes, str | None]:
        """(data, bad kind or None)."""
        r = self.rng.random()
        line = lambda e: json.dumps(e)  # noqa: E731
        if r < 0.40:
            return line(self._take(server_ts=self.rng.random() < 0.7)).encode(), None
        if r < 0.55:
            events = [
                self._take(late=self.rng.random() < 0.2) for _ in range(self.rng.randint(2, 6))
            ]
            return gzip.compress(("\n".join(map(line, events)) + "\n").encode()), None
        if r < 0.65:
            events = [self._take() for _ in range(self.rng.randint(2, 4))]
            return ("\n".join(map(line, events))).encode(), None
        if r < 0.72:
            return json.dumps(self._take(late=True), indent=2).encode(), None
        if r < 0.85 and self.events:  # a resend of an event already put
            self.resent += 1
            again = self.events[self.rng.choice(list(self.events)[-50:])]
            return line(again).encode(), None
        if r < 0.90:
            return b'{"event_id": "broken", ', "invalid-json"
        if r < 0.95:
            bad = dict(event(10_000_000 + self.next_id))
            del bad["event_id"]
            return json.dumps(bad).encode(), "no-event-id"
        return b"\x1f\x8b\x08\x00garbage", "corrupt-gzip"

    def _put(self, batch: list[tuple[bytes, str | None]]) -> None:
        answer = self.client.put_records(
            StreamName=self.stream,
            Records=[
                {"Data": data, "PartitionKey": f"p{self.rng.randrange(1_000_000)}"}
                for data, _ in batch
            ],
        )
        assert not answer.get("FailedRecordCount"), answer
        for (_, kind), result in zip(batch, answer["Records"], strict=True):
            self.records += 1
            if kind is not None:
                where = f"kinesis://{self.stream}/{result['ShardId']}/{result['SequenceNumber']}"
                self.bad[where] = kind

    def open_shards(self) -> list[dict[str, Any]]:
        shards = self.client.list_shards(StreamName=self.stream)["Shards"]
        return [s for s in shards if "EndingSequenceNumber" not in s["SequenceNumberRange"]]

    def split(self) -> None:
        """Split the first open shard in the middle of its hash range."""
        shard = self.open_shards()[0]
        lo = int(shard["HashKeyRange"]["StartingHashKey"])
        hi = int(shard["HashKeyRange"]["EndingHashKey"])
        self.client.split_shard(
            StreamName=self.stream,
            ShardToSplit=shard["ShardId"],
            NewStartingHashKey=str((lo + hi) // 2),
        )

    def merge(self) -> None:
        """Merge the first two adjacent open shards."""
        shards = sorted(self.open_shards(), key=lambda s: int(s["HashKeyRange"]["StartingHashKey"]))
        for a, b in itertools.pairwise(shards):
            if int(a["HashKeyRange"]["EndingHashKey"]) + 1 == int(
                b["HashKeyRange"]["StartingHashKey"]
            ):
                self.client.merge_shards(
                    StreamName=self.stream,
                    ShardToMerge=a["ShardId"],
                    AdjacentShardToMerge=b["ShardId"],
                )
                return
        raise AssertionError("no adjacent open shards to merge")
