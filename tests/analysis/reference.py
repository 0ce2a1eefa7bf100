"""Independent references for the funnel engine: ClickHouse itself (through chdb), and
plain-Python versions of each definition, written for clarity rather than speed."""

from __future__ import annotations

import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl


@dataclass(frozen=True)
class Ev:
    user: str
    kind: str
    ts_us: int
    event_id: str = ""
    session: str | None = None


def frame(events: Iterable[Ev]) -> pl.DataFrame:
    rows = list(events)
    return pl.DataFrame(
        {
            "event_id": [e.event_id or f"e{i:06d}" for i, e in enumerate(rows)],
            "user_id": [e.user for e in rows],
            "event_type": [e.kind for e in rows],
            "client_ts": [e.ts_us for e in rows],
            "session_id": [e.session for e in rows],
            "properties": [
                "{}" if e.session is None else '{"s": "' + e.session + '"}' for e in rows
            ],
        },
        schema={
            "event_id": pl.String,
            "user_id": pl.String,
            "event_type": pl.String,
            "client_ts": pl.Int64,
            "session_id": pl.String,
            "properties": pl.String,
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
    df: pl.DataFrame,
    steps: Sequence[str],
    window_us: int,
    ends_out: dict[str, list[int | None]] | None = None,
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
        reach: list[int | None] = [None] * len(steps)
        for j in range(len(steps)):
            ends = sorted(q for (lvl, q) in best if lvl == j)
            if ends:
                times[j] = seq[ends[0]][0] - best[(j, ends[0])]
                reach[j] = seq[ends[0]][0]
        if ends_out is not None:
            ends_out[user] = reach
        level = sum(1 for t in times if t is not None)
        if level:
            out[user] = (level, times)
    return out


def chains_by_definition(
    df: pl.DataFrame,
    steps: Sequence[str],
    windows_us: Sequence[int],
    excluded: dict[int, set[str]],
    ends_out: dict[str, list[int | None]] | None = None,
) -> dict[str, tuple[int, list[int | None]]]:
    """Window mode with exclusions and per-step windows, by enumerating every chain.

    A chain is events e1..em, ei of type steps[i], with ts(e1) <= ts(e2) <= ... (an event
    may fill two steps of the same name), ``ts(ei) - ts(e1) <= windows_us[i]`` and, for
    each link i -> i+1 (1-based i), no event of a type in ``excluded[i]`` with
    ``ts(ei) < ts <= ts(ei+1)``. Per user: (furthest m, µs to each step at the earliest
    time a chain of that length ends, from the latest first step among those chains)."""
    out = {}
    for user, evs in _by_user(df).items():
        times_of = sorted(evs)
        found: dict[int, tuple[int, int]] = {}  # level -> (end ts, -first): earliest end

        def extend(
            chain: list[int],
            j: int,
            found: dict[int, tuple[int, int]] = found,
            times_of: list[tuple[int, str, str]] = times_of,
        ) -> None:
            m = len(chain)
            key = (chain[-1], -chain[0])
            if m - 1 not in found or key < found[m - 1]:
                found[m - 1] = key
            if m == len(steps):
                return
            last = chain[-1]
            for ts, kind, _ in times_of:
                if kind != steps[m] or ts < last or ts - chain[0] > windows_us[m]:
                    continue
                blocked = any(
                    k in excluded.get(m, set()) and last < t <= ts for t, k, _ in times_of
                )
                if not blocked:
                    extend([*chain, ts], j + 1)

        for ts, kind, _ in times_of:
            if kind == steps[0]:
                extend([ts], 0)
        if found:
            times: list[int | None] = [None] * len(steps)
            reach: list[int | None] = [None] * len(steps)
            for lvl, (end, neg_first) in found.items():
                times[lvl] = end + neg_first
                reach[lvl] = end
            out[user] = (max(found) + 1, times)
            if ends_out is not None:
                ends_out[user] = reach
    return out


def per_held_value(
    df: pl.DataFrame,
    hold: str,
    one: Callable[
        [pl.DataFrame, dict[str, list[int | None]]], dict[str, tuple[int, list[int | None]]]
    ],
) -> dict[str, tuple[int, list[int | None]]]:
    """``one`` on each (user, held value) sequence (null is a value): a user's level is
    the best over their sequences; the time to step k is the one of the sequence that
    reached k first (earliest client time, then the shorter time)."""
    best: dict[str, tuple[int, list[tuple[int, int] | None]]] = {}
    for _, part in df.group_by([hold]):
        ends: dict[str, list[int | None]] = {}
        for user, (level, times) in one(part, ends).items():
            old_level, old = best.get(user, (0, [None] * len(times)))
            merged: list[tuple[int, int] | None] = []
            for k, t in enumerate(times):
                end = ends[user][k]
                here = None if t is None or end is None else (end, t)
                cand = [x for x in (old[k], here) if x is not None]
                merged.append(min(cand) if cand else None)
            best[user] = (max(old_level, level), merged)
    return {u: (lvl, [None if x is None else x[1] for x in ts]) for u, (lvl, ts) in best.items()}
