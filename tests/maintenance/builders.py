"""Build fragmented event tables for maintenance tests: many small on-time and late
appends, resends (duplicate event_ids) and some unsorted files, straight through pyiceberg."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pyarrow as pa
from pyiceberg.table import Table

from lakehouse.schema import (
    EVENT_SCHEMA,
    SUMMARY_IDEMPOTENCY_KEY,
    SUMMARY_KIND,
    SUMMARY_LATE,
    SUMMARY_LATE_HOURS,
)

BASE = datetime(2024, 5, 1, tzinfo=UTC)  # long closed
ARROW_SCHEMA = EVENT_SCHEMA.as_arrow()
COLUMNS = [f.name for f in ARROW_SCHEMA]


def hour_start(hour: int) -> datetime:
    return BASE + timedelta(hours=hour)


def label(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H")


def to_arrow(rows: Sequence[dict[str, object]]) -> pa.Table:
    return pa.Table.from_pylist(list(rows), schema=ARROW_SCHEMA)


def make_rows(
    rng: random.Random,
    n: int,
    hour: datetime,
    prefix: str,
    *,
    server_delay: timedelta = timedelta(seconds=5),
) -> list[dict[str, object]]:
    rows = []
    for i in range(n):
        client_ts = hour + timedelta(microseconds=rng.randrange(3600 * 10**6))
        rows.append(
            {
                "event_id": f"{prefix}-{i:05d}-{rng.randrange(10**6):06d}",
                "user_id": f"u{rng.randrange(50)}",
                "event_type": rng.choice(["view", "click", "buy"]),
                "client_ts": client_ts,
                "server_ts": client_ts + server_delay + timedelta(milliseconds=rng.randrange(1000)),
                "session_id": None if rng.random() < 0.2 else f"s{rng.randrange(20)}",
                "properties": f'{{"k": {rng.randrange(100)}}}',
            }
        )
    return rows


def sort_rows(rows: Iterable[dict[str, object]]) -> list[dict[str, object]]:
    return sorted(rows, key=lambda r: (r["client_ts"], r["event_id"]))  # type: ignore[return-value]


def append(
    table: Table, rows: Sequence[dict[str, object]], *, late: bool = False, key: str = ""
) -> None:
    props = {
        SUMMARY_KIND: "late" if late else "on-time",
        SUMMARY_IDEMPOTENCY_KEY: key or f"k{random.random()}",
    }
    if late:
        hours = sorted({label(r["client_ts"]) for r in rows})  # type: ignore[arg-type]
        props[SUMMARY_LATE] = "true"
        props[SUMMARY_LATE_HOURS] = ",".join(hours)
    table.append(to_arrow(rows), snapshot_properties=props)


@dataclass
class Fed:
    """Everything appended, to check the table against afterwards."""

    rows: list[dict[str, object]] = field(default_factory=list)
    hours: list[datetime] = field(default_factory=list)

    def expected(self) -> list[dict[str, object]]:
        """One row per event_id: the earliest server_ts wins."""
        best: dict[object, dict[str, object]] = {}
        for row in self.rows:
            cur = best.get(row["event_id"])
            if cur is None or row["server_ts"] < cur["server_ts"]:  # type: ignore[operator]
                best[row["event_id"]] = row
        return list(best.values())

    @property
    def duplicates(self) -> int:
        return len(self.rows) - len(self.expected())


def feed(
    table: Table, *, seed: int = 7, hours: int = 3, batches_per_hour: int = 8, batch_size: int = 40
) -> Fed:
    """Many small on-time batches per hour, late batches into closed hours, resends racing
    (duplicates, one whose copy has the earlier server_ts), and some unsorted files."""
    rng = random.Random(seed)
    fed = Fed(hours=[hour_start(h) for h in range(hours)])
    for h, start in enumerate(fed.hours):
        for b in range(batches_per_hour):
            rows = make_rows(rng, batch_size, start, f"h{h}b{b}")
            unsorted = b == 3  # a writer that forgot to sort
            append(table, rows if unsorted else sort_rows(rows))
            fed.rows += rows
    # Late batches into closed hours (one spans two hours).
    for i in range(3):
        rows = make_rows(rng, 15, fed.hours[i % hours], f"late{i}", server_delay=timedelta(hours=5))
        if i == 2 and hours > 1:
            rows += make_rows(rng, 10, fed.hours[1], f"late{i}x", server_delay=timedelta(hours=5))
        append(table, sort_rows(rows), late=True)
        fed.rows += rows
    # Resends: the same events again with a later server_ts ...
    for _ in range(2):
        picked = rng.sample(fed.rows, 12)
        again = [{**r, "server_ts": r["server_ts"] + timedelta(seconds=30)} for r in picked]  # type: ignore[operator]
        append(table, sort_rows(again), late=True)
        fed.rows += again
    # ... and one racing copy that arrived first: earlier server_ts, other payload.
    picked = rng.sample(fed.rows[: batch_size * 2], 5)
    early = [
        {**r, "server_ts": r["server_ts"] - timedelta(seconds=1), "properties": '{"race": 1}'}
        for r in picked
    ]  # type: ignore[operator]
    append(table, sort_rows(early), late=True)
    fed.rows += early
    return fed


def row_key(row: dict[str, object]) -> tuple[object, ...]:
    return tuple(row[c] for c in COLUMNS)


def multiset(rows: Iterable[dict[str, object]]) -> Counter[tuple[object, ...]]:
    return Counter(row_key(r) for r in rows)


def table_rows(table: Table, snapshot_id: int | None = None) -> list[dict[str, object]]:
    return table.scan(snapshot_id=snapshot_id).to_arrow().to_pylist()  # type: ignore[no-any-return]
