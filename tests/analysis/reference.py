"""Independent references for the funnel engine: ClickHouse itself (through chdb), and
plain-Python versions of each definition, written for clarity rather than speed."""

from __future__ import annotations

import tempfile
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl


@dataclass(frozen=True)
class Ev:
    user: str
    kind: str
    ts_us: int
    event_id: str = ""


def frame(events: Iterable[Ev]) -> pl.DataFrame:
    rows = list(events)
    return pl.DataFrame(
        {
            "event_id": [e.event_id or f"e{i:06d}" for i, e in enumerate(rows)],
            "user_id": [e.user for e in rows],
            "event_type": [e.kind for e in rows],
            "client_ts": [e.ts_us for e in rows],
        },
        schema={
            "event_id": pl.String,
            "user_id": pl.String,
            "event_type": pl.String,
            "client_ts": pl.Int64,
        },
    ).with_columns(pl.col("client_ts").cast(pl.Datetime("us", "UTC")))


def chdb_levels(df: pl.DataFrame, steps: Sequence[str], window_us: int) -> dict[str, int]:
    """``windowFunnel(window_us)`` per user, computed by ClickHouse (chdb) from a Parquet
    file. Users whose level is 0 are left out."""
    import chdb

    conds = ", ".join("event_type = '" + s.replace("'", "''") + "'" for s in steps)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.parquet"
        df.select("user_id", "event_type", "client_ts").write_parquet(path)
        table = chdb.query(
            f"SELECT user_id, windowFunnel({window_us})("
            f"toUInt64(toUnixTimestamp64Micro(client_ts)), {conds}) AS level "
            f"FROM file('{path}', Parquet) GROUP BY user_id",
            "ArrowTable",
        )
    out = pl.from_arrow(table)
    assert isinstance(out, pl.DataFrame)
    return {str(u): int(v) for u, v in out.iter_rows() if v > 0}


def _by_user(df: pl.DataFrame) -> dict[str, list[tuple[int, str, str]]]:
    users: dict[str, list[tuple[int, str, str]]] = defaultdict(list)
    rows = df.select(
        "user_id", pl.col("client_ts").dt.epoch("us"), "event_type", "event_id"
    ).iter_rows()
    for user, ts, kind, event_id in rows:
        users[user].append((ts, kind, event_id))
    return users


def clickhouse_walk(
    df: pl.DataFrame, steps: Sequence[str], window_us: int
) -> dict[str, tuple[int, list[int | None]]]:
    """ClickHouse's windowFunnel loop transliterated: per user (level, µs to each step at
    the first time it was reached). Users with level 0 are left out."""
    out = {}
    for user, evs in _by_user(df).items():
        entries = sorted((ts, k) for ts, kind, _ in evs for k, s in enumerate(steps) if s == kind)
        first: list[int | None] = [None] * len(steps)
        times: list[int | None] = [None] * len(steps)
        for ts, k in entries:
            if k == 0:
                first[0] = ts
                if times[0] is None:
                    times[0] = 0
            elif first[k - 1] is not None and ts <= first[k - 1] + window_us:  # type: ignore[operator]
                first[k] = first[k - 1]
                if times[k] is None:
                    times[k] = ts - first[k - 1]  # type: ignore[operator]
        level = sum(1 for f in first if f is not None)
        if level:
            out[user] = (level, times)
    return out


def strict_by_definition(
    df: pl.DataFrame, steps: Sequence[str], window_us: int
) -> dict[str, tuple[int, list[int | None]]]:
    """Strict mode from its definition, by enumerating every chain: events in
    ``(client_ts, event_id)`` order; a chain e1..em has ei matching step i, every event
    strictly between ei and ei+1 matching step i+1, and ts(em) - ts(e1) <= window.
    Per user: (furthest m, µs to each step at the earliest event ending a chain of that
    length, from the latest first step among the chains ending there)."""
    out = {}
    for user, evs in _by_user(df).items():
        seq = sorted(evs, key=lambda e: (e[0], e[2]))
        n = len(seq)
        # best[(j, q)] = latest first-step time of a chain of length j+1 ending at q
        best: dict[tuple[int, int], int] = {}
        for p in range(n):
            if seq[p][1] == steps[0]:
                best[(0, p)] = seq[p][0]
        for j in range(1, len(steps)):
            for (lvl, p), start in list(best.items()):
                if lvl != j - 1:
                    continue
                for q in range(p + 1, n):
                    if seq[q][1] != steps[j]:
                        break  # an event not matching the next step ends the chain
                    if seq[q][0] - start <= window_us:
                        best[(j, q)] = max(best.get((j, q), start), start)
        times: list[int | None] = [None] * len(steps)
        for j in range(len(steps)):
            ends = sorted(q for (lvl, q) in best if lvl == j)
            if ends:
                times[j] = seq[ends[0]][0] - best[(j, ends[0])]
        level = sum(1 for t in times if t is not None)
        if level:
            out[user] = (level, times)
    return out
