"""A 4-step window funnel over N events: Polars (ours) beside ClickHouse's own
``windowFunnel`` (chdb), the ``duckdb`` engine's query and the read API's ``funnel_sql``
run by DuckDB, on the same Parquet files, in the same run; each engine in its own
process, so each peak RSS is that engine's.

    python benchmarks/bench_funnel.py [--events 10000000] [--repeat 3] [--window 1d]

Events are sessions of the shop funnel (app_open -> view_product -> add_to_cart ->
checkout -> purchase, with drop-off) mixed with search/view_page events, over 3 days,
about 12 events per user; written as 24 Parquet files sorted by client time (as the
table's hour files are). Each engine's result must equal ours, or the run fails.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import BASE, TS, cpu_info, peak_rss_mb
from lakehouse.durations import parse_duration

FUNNEL = ("app_open", "view_product", "add_to_cart", "checkout", "purchase")
NOISE = ("search", "view_page")
CONTINUE = (0.8, 0.45, 0.6, 0.7)
STEPS = FUNNEL[:4]


def synthetic_sessions(n: int, *, seed: int = 1, days: int = 3) -> pa.Table:
    """``n`` events: shopping sessions with drop-off, noise events inside the sessions."""
    rng = np.random.default_rng(seed)
    sessions = max(1, n // 4)
    depth = np.ones(sessions, dtype=np.int64)
    alive = np.ones(sessions, dtype=bool)
    for p in CONTINUE:
        alive &= rng.random(sessions) < p
        depth += alive
    noise = rng.integers(0, 4, sessions)
    size = depth + noise
    total = int(size.sum())
    session = np.repeat(np.arange(sessions), size)
    pos = np.arange(total) - np.repeat(np.cumsum(size) - size, size)  # index within session
    is_step = pos < np.repeat(depth, size)
    kinds = np.array([*FUNNEL, *NOISE])
    kind = np.where(
        is_step, np.minimum(pos, len(FUNNEL) - 1), len(FUNNEL) + rng.integers(0, 2, total)
    )
    span_us = days * 86_400_000_000
    start = rng.integers(0, span_us, sessions)
    gaps = rng.integers(3_000_000, 240_000_000, total)
    # step events come first in each session, at increasing offsets (sums of their gaps);
    # noise events fall anywhere within the session's span
    ends = np.cumsum(size)
    firsts = ends - size
    cum = np.cumsum(gaps)
    step_offset = cum - np.repeat(cum[firsts] - gaps[firsts], size)
    session_span = np.repeat(step_offset[ends - 1], size)
    offset = np.where(is_step, step_offset, (rng.random(total) * session_span).astype(np.int64))
    users = np.repeat(rng.integers(0, max(1, n // 12), sessions), size)
    client = int(BASE.timestamp() * 1_000_000) + np.repeat(start, size) + offset
    table = pa.table(
        {
            "event_id": _labels("ev-", np.arange(total)),
            "user_id": _labels("user-", users),
            "event_type": pa.array(kinds).take(pa.array(kind)),
            "client_ts": pa.array(client, pa.int64()).cast(TS),
            "session_id": _labels("s-", session),
        }
    )
    return table.slice(0, n)


def _labels(prefix: str, values: np.ndarray) -> pa.Array:
    return pc.binary_join_element_wise(prefix, pa.array(values).cast(pa.string()), "")


def write_files(table: pa.Table, folder: Path, files: int = 24) -> list[Path]:
    order = np.argsort(table.column("client_ts").cast(pa.int64()).to_numpy(), kind="stable")
    table = table.take(order)
    paths = []
    step = -(-table.num_rows // files)
    for k in range(files):
        path = folder / f"part-{k:03d}.parquet"
        pq.write_table(table.slice(k * step, step), path, compression="zstd")
        paths.append(path)
    return paths


def best(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        began = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - began)
    return min(times), result


def run_polars(folder: Path, window: timedelta) -> list[int]:
    import polars as pl

    from lakehouse.funnels import funnel

    result = funnel(pl.scan_parquet(str(folder / "*.parquet")), STEPS, window)
    return [s.users for s in result.steps]


def run_polars_strict(folder: Path, window: timedelta) -> list[int]:
    import polars as pl

    from lakehouse.funnels import funnel

    lf = pl.scan_parquet(str(folder / "*.parquet"))
    return [s.users for s in funnel(lf, STEPS, window, mode="strict").steps]


def run_chdb(folder: Path, window: timedelta) -> list[int]:
    import chdb

    conds = ", ".join(f"event_type = '{s}'" for s in STEPS)
    w = window // timedelta(microseconds=1)
    sql = (
        f"SELECT level, count() AS users FROM (SELECT user_id, windowFunnel({w})("
        f"toUInt64(toUnixTimestamp64Micro(client_ts)), {conds}) AS level "
        f"FROM file('{folder}/*.parquet', Parquet) GROUP BY user_id) GROUP BY level"
    )
    rows = chdb.query(sql, "JSONCompact")
    per_level = {int(level): int(users) for level, users in json.loads(rows.bytes())["data"]}
    return [sum(v for lvl, v in per_level.items() if lvl >= k) for k in range(1, len(STEPS) + 1)]


def run_duckdb_engine(folder: Path, window: timedelta) -> list[int]:
    """The ``duckdb`` funnel engine's query (the one Trino and Athena run) on DuckDB."""
    import duckdb

    from lakehouse.funnels.query import DUCKDB_MACROS, funnel_query, result_parts
    from lakehouse.funnels.spec import funnel_spec

    spec = funnel_spec(STEPS, window)
    con = duckdb.connect()
    for macro in DUCKDB_MACROS:
        con.execute(macro)
    con.execute(f"CREATE VIEW events AS SELECT * FROM read_parquet('{folder}/*.parquet')")
    columns = ("event_id", "user_id", "event_type", "client_ts", "session_id")
    sql, params = funnel_query(spec, "events", columns, dialect="duckdb")
    rows = [tuple(r) for r in con.execute(sql, params).fetchall()]
    return [s.users for s in result_parts(rows, spec)[0]]


def run_duckdb(folder: Path, window: timedelta) -> list[int]:
    import duckdb

    from lakehouse.funnels import funnel_sql

    sql, params = funnel_sql(STEPS, window, "events")
    con = duckdb.connect()
    con.execute("CREATE MACRO to_unixtime(t) AS epoch_us(t) / 1e6")
    con.execute(f"CREATE VIEW events AS SELECT * FROM read_parquet('{folder}/*.parquet')")
    row = con.execute(sql, params).fetchone()
    assert row is not None
    return [int(v) for v in row]


RUNNERS: dict[str, Callable[[Path, timedelta], list[int]]] = {
    "polars": run_polars,
    "polars_strict": run_polars_strict,
    "chdb": run_chdb,
    "duckdb_engine": run_duckdb_engine,
    "duckdb_sql": run_duckdb,
}


def _measure(name: str, folder: Path, window: timedelta, repeat: int) -> tuple[float, Any, float]:
    """In a fresh process: best time of ``repeat`` runs, the result, that process's peak
    RSS in MB (so each engine's memory is its own)."""
    seconds, result = best(lambda: RUNNERS[name](folder, window), repeat)
    return seconds, result, _own_peak_mb()


def _own_peak_mb() -> float:
    """This process's peak RSS (``VmHWM``: reset by exec, unlike ``ru_maxrss``, which a
    child inherits from the parent it was forked from)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return peak_rss_mb()


def measure(name: str, folder: Path, window: timedelta, repeat: int) -> tuple[float, Any, float]:
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_measure, (name, folder, window, repeat))


def _load() -> str:
    """The 1/5/15-minute load averages: on a shared machine only ratios measured at a low
    load mean anything."""
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--window", default="1d")
    parser.add_argument("--skip-duckdb", action="store_true")
    parser.add_argument(
        "--with-strict", action="store_true", help="also time strict mode (no comparator)"
    )
    args = parser.parse_args()
    window = parse_duration(args.window)
    with tempfile.TemporaryDirectory(prefix="bench-funnel-") as tmp:
        folder = Path(tmp)
        began = time.perf_counter()
        table = synthetic_sessions(args.events)
        write_files(table, folder)
        users = pc.count_distinct(table.column("user_id")).as_py()
        del table
        print(
            f"{args.events:,} events in 24 Parquet files ({time.perf_counter() - began:.1f} s to make)"
        )
        print(
            f"machine: {cpu_info()}; best of {args.repeat}; window {args.window}; steps {', '.join(STEPS)}"
        )
        print(f"load average at the start: {_load()}")
        print(f"users: {users:,}")
        ours_s, ours, ours_mb = measure("polars", folder, window, args.repeat)
        print(
            f"polars (ours)            {ours_s:7.2f} s   peak {ours_mb:6,.0f} MB   users per step {ours}"
        )
        ch_s, ch, ch_mb = measure("chdb", folder, window, args.repeat)
        same = "equal" if ch == ours else f"DIFFERENT: {ch}"
        print(
            f"chdb windowFunnel        {ch_s:7.2f} s   peak {ch_mb:6,.0f} MB   {same}   "
            f"ours/chdb = {ours_s / ch_s:.2f}"
        )
        de_s, de, de_mb = measure("duckdb_engine", folder, window, args.repeat)
        same = "equal" if de == ours else f"DIFFERENT: {de}"
        print(
            f"duckdb engine            {de_s:7.2f} s   peak {de_mb:6,.0f} MB   {same}   "
            f"ours/duckdb = {ours_s / de_s:.2f}"
        )
        differ = ch != ours or de != ours
        if not args.skip_duckdb:
            dd_s, dd, dd_mb = measure("duckdb_sql", folder, window, args.repeat)
            same = "equal" if dd == ours else f"DIFFERENT: {dd}"
            print(
                f"duckdb (funnel_sql)      {dd_s:7.2f} s   peak {dd_mb:6,.0f} MB   {same}   "
                f"ours/duckdb = {ours_s / dd_s:.2f}"
            )
            differ = differ or dd != ours
        if args.with_strict:
            st_s, st, st_mb = measure("polars_strict", folder, window, args.repeat)
            print(
                f"polars strict mode       {st_s:7.2f} s   peak {st_mb:6,.0f} MB   users per step {st}"
            )
        print(f"parent peak RSS {peak_rss_mb():,.0f} MB (data generation)")
        print(f"load average at the end: {_load()}")
        if differ:
            sys.exit(1)


if __name__ == "__main__":
    main()
