"""How far the table is behind a Kinesis stream, shard by shard: the records not yet
committed and the age of the oldest of them (read from the last committed position,
nothing is committed)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from writers.sources.base import LedgerView
from writers.sources.kinesis import SCHEME, START_MARK, _finished, read_committed
from writers.sources.kinesis_client import StreamClient


@dataclass(frozen=True)
class ShardLag:
    """``records_behind`` counts up to the pages read (``at_least`` when it stopped
    counting); ``seconds_behind`` is the age of the oldest record not yet committed."""

    shard: str
    closed: bool
    committed_sequence: int | None
    records_behind: int
    at_least: bool
    seconds_behind: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def streams_in(ledger: LedgerView) -> list[str]:
    """The streams the ledger holds positions of."""
    names = set()
    for position, _ in ledger.committed_with_prefix(SCHEME):
        rest = position[len(SCHEME) :]
        if rest.count("/") >= 2:
            names.add(rest.split("/", 1)[0])
    return sorted(names)


def shard_lag(
    ledger: LedgerView,
    client: StreamClient,
    *,
    now: datetime | None = None,
    max_pages: int = 10,
    page: int = 10_000,
) -> list[ShardLag]:
    """The lag of every shard of the client's stream not yet finished."""
    committed = read_committed(ledger, client.stream)
    now = now or datetime.now(UTC)
    out: list[ShardLag] = []
    for shard in client.shards():
        if _finished(shard, committed.after):
            continue
        after = committed.after.get(shard.id)
        iterator: str | None = client.iterator(
            shard.id, after=after, at=committed.start_at if after is None else None
        )
        count, oldest, capped = 0, None, True
        for _ in range(max_pages):
            if iterator is None:
                capped = False
                break
            read = client.read(iterator, page)
            if read.records and oldest is None:
                arrived = read.records[0].get("ApproximateArrivalTimestamp")
                if isinstance(arrived, datetime):
                    oldest = arrived if arrived.tzinfo else arrived.replace(tzinfo=UTC)
            count += len(read.records)
            iterator = read.next_iterator
            if not read.records or read.millis_behind == 0:
                capped = False
                break
        out.append(
            ShardLag(
                shard=shard.id,
                closed=shard.closed,
                committed_sequence=after,
                records_behind=count,
                at_least=capped,
                seconds_behind=max(0.0, (now - oldest).total_seconds()) if oldest else 0.0,
            )
        )
    return out


__all__ = ["START_MARK", "ShardLag", "shard_lag", "streams_in"]
