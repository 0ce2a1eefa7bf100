"""Generated event streams, written the way production writes them, for the Trino tests
and ``benchmarks/bench_trino.py``.

Users walk a shopping funnel with noise events; some events share their user's previous
client time exactly (ties, broken by ``event_id``) or follow it by a fraction of a
millisecond; ids are random, so id order is not time order. Deliveries: most events
arrive seconds after they happen, some many hours later (late), a few twice (resends).
Events are grouped by arrival into delivery batches; each batch is one commit of the real
:class:`writers.EventWriter` (on-time and late rows in one atomic commit).
"""

from __future__ import annotations

import random
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa

from catalog import open_catalog
from lakehouse.settings import Settings
from lakehouse.tables import ensure_tables
from writers import EventWriter, WriteResult

BASE = datetime(2024, 5, 1, tzinfo=UTC)  # long closed: every hour can be compacted
FUNNEL = ("app_open", "view_product", "add_to_cart", "checkout", "purchase")
NOISE = ("search", "view_page")
PLATFORMS = ("ios", "android", "web")
LONE_HOUR = BASE + timedelta(days=2)  # fragment(): an hour holding one unsorted file


@dataclass(frozen=True)
class Delivery:
    """One delivery batch: the rows and when they were received."""

    received: datetime
    rows: list[dict[str, Any]]


def _iso(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")


def generate_events(
    seed: int,
    *,
    users: int,
    events: int,
    start: datetime = BASE,
    hours: int = 12,
    late_fraction: float = 0.12,
) -> list[dict[str, Any]]:
    """``events`` distinct events (dicts as the writer takes them, with ``_arrival``)."""
    rng = random.Random(seed)
    span = hours * 3600.0
    mean = max(1.0, events / users)
    out: list[dict[str, Any]] = []
    serial = 0
    for u in range(users):
        user = f"user-{u:05d}"
        platform = rng.choice(PLATFORMS)
        ts = start + timedelta(seconds=rng.uniform(0, span * 0.9))
        step = 0
        left = events - len(out)
        count = left if u == users - 1 else min(left, 1 + int(rng.expovariate(1 / mean)))
        for _ in range(count):
            roll = rng.random()
            if roll < 0.05:
                gap = timedelta(0)  # a tie: same client time as the previous event
            elif roll < 0.08:
                gap = timedelta(microseconds=rng.randrange(1, 1500))
            else:
                gap = timedelta(seconds=rng.expovariate(1 / 240))
            ts = min(ts + gap, start + timedelta(seconds=span) - timedelta(microseconds=1))
            if rng.random() < 0.25:
                kind = rng.choice(NOISE)
            else:
                kind = FUNNEL[step]
                step = step + 1 if rng.random() < 0.55 and step < len(FUNNEL) - 1 else 0
            late = rng.random() < late_fraction
            delay = (
                timedelta(hours=rng.uniform(2, 20))
                if late
                else timedelta(seconds=rng.uniform(1, 40))
            )
            serial += 1
            out.append(
                {
                    "event_id": f"{rng.getrandbits(40):010x}-{serial}",
                    "user_id": user,
                    "event_type": kind,
                    "client_ts": ts,
                    "platform": platform,
                    "properties": f'{{"page": "/p/{rng.randrange(5)}"}}',
                    "_arrival": ts + delay,
                }
            )
    return out


def deliveries(
    events: Sequence[dict[str, Any]],
    *,
    every: timedelta = timedelta(minutes=30),
    resend_fraction: float = 0.02,
    seed: int = 0,
) -> list[Delivery]:
    """The events grouped by arrival into batches ``every`` long; some events are sent
    again in the next batch (the writer must drop them)."""
    rng = random.Random(seed)
    slots: dict[int, list[dict[str, Any]]] = {}
    step = every.total_seconds()
    for ev in events:
        slot = int(ev["_arrival"].timestamp() // step)
        row = {
            "event_id": ev["event_id"],
            "user_id": ev["user_id"],
            "event_type": ev["event_type"],
            "client_ts": _iso(ev["client_ts"]),
            "server_ts": _iso(ev["_arrival"]),
            "platform": ev["platform"],
            "properties": ev["properties"],
        }
        slots.setdefault(slot, []).append(row)
        if rng.random() < resend_fraction:
            slots.setdefault(slot + 1, []).append(dict(row))
    return [
        Delivery(datetime.fromtimestamp((slot + 1) * step, tz=UTC), rows)
        for slot, rows in sorted(slots.items())
    ]


def write_deliveries(settings: Settings, batches: Sequence[Delivery]) -> list[WriteResult]:
    """Each batch as one commit of the real writer, received at its time."""
    clock = {"now": batches[0].received if batches else datetime.now(UTC)}
    results = []
    with EventWriter(settings, clock=lambda: clock["now"], max_age=1e9) as writer:
        for batch in batches:
            clock["now"] = batch.received
            writer.write(batch.rows)
            results.append(writer.flush())
    return results


def append_raw(table: Any, rows: Sequence[dict[str, Any]], *, kind: str = "on-time") -> None:
    """Rows appended straight through pyiceberg, unsorted and not marked sorted, as
    another producer (a Spark job, a backfill) would."""
    from lakehouse.schema import SUMMARY_IDEMPOTENCY_KEY, SUMMARY_KIND

    schema = table.schema().as_arrow()
    data = [
        {
            **{f.name: None for f in schema},
            **{k: v for k, v in r.items() if not k.startswith("_")},
            "server_ts": r["_arrival"],
        }
        for r in rows
    ]
    table.append(
        pa.Table.from_pylist(data, schema=schema),
        snapshot_properties={SUMMARY_KIND: kind, SUMMARY_IDEMPOTENCY_KEY: f"raw-{random.random()}"},
    )


def chdb_users(df: pl.DataFrame, steps: Sequence[str], window: timedelta) -> list[int]:
    """Users reaching each step by ClickHouse's own ``windowFunnel(window)`` (chdb, in
    process) over the ``user_id, event_type, client_ts`` of ``df``: the oracle."""
    import chdb

    window_us = window // timedelta(microseconds=1)
    conds = ", ".join("event_type = '" + s.replace("'", "''") + "'" for s in steps)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.parquet"
        df.select("user_id", "event_type", "client_ts").write_parquet(path)
        levels = chdb.query(
            f"SELECT windowFunnel({window_us})(toUInt64(toUnixTimestamp64Micro(client_ts)), "
            f"{conds}) AS level FROM file('{path}', Parquet) GROUP BY user_id",
            "ArrowTable",
        )
    values = levels.column("level").to_pylist()
    return [sum(1 for v in values if v >= k) for k in range(1, len(steps) + 1)]


def fragment(settings: Settings, seed: int, *, chunks: int = 12) -> Counter[tuple[Any, ...]]:
    """Small unsorted appends over 8 closed hours, and one lone unsorted file; returns
    the table's rows (:func:`table_rows`) as a multiset."""
    table = ensure_tables(open_catalog(settings), settings.table)[0].events
    rng = random.Random(seed)
    rows = generate_events(seed, users=200, events=3000, hours=8)
    rng.shuffle(rows)
    for i in range(chunks):
        append_raw(table.refresh(), rows[i::chunks])
    lone = [
        {**r, "client_ts": LONE_HOUR + timedelta(seconds=50 - i), "_arrival": LONE_HOUR}
        for i, r in enumerate(generate_events(seed + 1, users=3, events=40, hours=1))
    ]
    append_raw(table.refresh(), lone)
    return Counter(table_rows(settings))


def table_rows(settings: Settings) -> list[tuple[Any, ...]]:
    table = open_catalog(settings).load_table(settings.table.identifier)
    data = table.scan(selected_fields=("event_id", "user_id", "event_type", "client_ts")).to_arrow()
    return [tuple(r.values()) for r in data.to_pylist()]
