"""Trino on the lakehouse: query time on a fragmented table and after compaction, and our
compaction against Trino's ``optimize`` on identical copies of one fragmented table.

    python benchmarks/bench_trino.py                          # 2,000 files, 2M events
    python benchmarks/bench_trino.py --files 500 --events 500000 --repeat 2   # quick

Three identical copies of one fragmented table are built (``bench_compaction.build``:
``--files`` small sorted writer files over ``--hours`` hour partitions, 5% late batches,
1% resends; the same seed, so the same rows and the same file layout). One Trino 476
(``--heap``) serves them. Then:

1. on copy A: two queries, best of ``--repeat`` after a warm-up run: events per hour
   over one day (``GROUP BY date_trunc('hour', client_ts)``) and a 4-step window funnel
   (1 day, the ``trino`` funnel engine); then A is compacted by our Python maintenance
   (``compact`` + ``rewrite_manifests``, timed) and the queries run again;
2. copy B is compacted by Trino carrying out the same plan, one ``optimize`` per planned
   hour (``lakehouse.engines.trino.maintenance.compact_with_trino``); copy C the same with all
   contiguous planned hours in one statement (``hours_per_statement=--hours``: one
   ``optimize`` over the day, Trino's own best case);
3. for A, B and C: files after, rows (count and distinct ids against the input), and
   sortedness: every live data file read with pyarrow, sorted by (client_ts, event_id)?

Ratios are against figures measured in the same run. Needs ``lakehouse trino install``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_compaction import build
from benchmarks.common import BASE, cpu_info, fresh_home
from catalog import open_catalog
from lakehouse.engines.trino.funnel import run_trino
from lakehouse.engines.trino.maintenance import compact_with_trino
from lakehouse.engines.trino.sql import table_ref
from lakehouse.funnels import FunnelRequest
from lakehouse.settings import Settings, TableName
from lakehouse.trino_server import ServerOptions, query, start, stop
from maintenance import CompactionOptions, compact, plan_compaction, rewrite_manifests

STEPS = ("app_open", "view_product", "add_to_cart", "checkout")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def best_of(fn: Any, repeat: int) -> tuple[float, Any]:
    fn()  # warm-up: JIT, metadata caches
    best, out = float("inf"), None
    for _ in range(repeat):
        began = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - began)
    return best, out


def query_times(settings: Settings, port: int, repeat: int) -> dict[str, Any]:
    day = (BASE, BASE + timedelta(days=1))
    per_hour = (
        f"SELECT date_trunc('hour', client_ts) AS h, count(*) FROM {table_ref(settings)} "
        "WHERE client_ts >= ? AND client_ts < ? GROUP BY 1"
    )
    hourly_s, hourly = best_of(
        lambda: query(per_hour, list(day), settings=settings, port=port), repeat
    )
    request = FunnelRequest(STEPS, timedelta(days=1))
    funnel_s, funnel = best_of(lambda: run_trino(settings, request, port=port), repeat)
    return {
        "events_per_hour_seconds": round(hourly_s, 3),
        "events_per_hour_rows": sum(r[1] for r in hourly.rows),
        "funnel_seconds": round(funnel_s, 3),
        "funnel_users": [s.users for s in funnel.steps],
    }


def layout(settings: Settings, port: int) -> dict[str, Any]:
    """Files, rows and sortedness of the live data files of the current snapshot."""
    table = open_catalog(settings).load_table(settings.table.identifier)
    files = table.inspect.files().to_pylist()
    unsorted = 0
    for f in files:
        data = pq.read_table(
            f["file_path"].removeprefix("file://"), columns=["client_ts", "event_id"]
        )
        keys = list(zip(data["client_ts"].to_pylist(), data["event_id"].to_pylist(), strict=True))
        unsorted += keys != sorted(keys)
    [(rows, distinct)] = query(
        f"SELECT count(*), count(DISTINCT event_id) FROM {table_ref(settings)}",
        settings=settings,
        port=port,
    ).rows
    return {
        "files": len(files),
        "files_sorted": len(files) - unsorted,
        "all_files_sorted": unsorted == 0,
        "rows": rows,
        "distinct_event_ids": distinct,
        "bytes": sum(f["file_size_in_bytes"] for f in files),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    options = CompactionOptions(target_file_size=args.target_file_size)
    with fresh_home("bench-trino-") as home:
        copies = {c: home.with_table(TableName("analytics", f"events_{c}")) for c in "abc"}
        built = {
            c: build(s, args.files, args.events, args.hours, args.seed) for c, s in copies.items()
        }
        assert len({(b["data_files"], b["events"]) for b in built.values()}) == 1, built
        port = args.port or free_port()
        started = start(home, ServerOptions(port=port, heap=args.heap))
        try:
            a, b, c = copies["a"], copies["b"], copies["c"]
            before = query_times(a, port, args.repeat)
            before_layout = layout(a, port)

            table = open_catalog(a).load_table(a.table.identifier)
            began = time.perf_counter()
            ours = compact(table, options)
            manifests = rewrite_manifests(table)
            ours_s = time.perf_counter() - began
            after = query_times(a, port, args.repeat)

            table_b = open_catalog(b).load_table(b.table.identifier)
            began = time.perf_counter()
            plan = plan_compaction(table_b, options)
            by_trino = compact_with_trino(plan, b, port=port, table=table_b)
            trino_plan_s = time.perf_counter() - began

            table_c = open_catalog(c).load_table(c.table.identifier)
            began = time.perf_counter()
            plan_c = plan_compaction(table_c, options)
            batched = compact_with_trino(
                plan_c, c, port=port, table=table_c, hours_per_statement=args.hours
            )
            trino_whole_s = time.perf_counter() - began
            layouts = {
                "ours": layout(a, port),
                "trino_per_hour": layout(b, port),
                "trino_one_statement": layout(c, port),
            }
        finally:
            stop(home, port=port)
    return {
        "machine": cpu_info(),
        "trino": {"version": started.status.version, "heap": args.heap},
        "table": built["a"],
        "fragmented": {**before, **before_layout},
        "compacted": after,
        "query_speedup": {
            "events_per_hour": round(
                before["events_per_hour_seconds"] / after["events_per_hour_seconds"], 2
            ),
            "funnel": round(before["funnel_seconds"] / after["funnel_seconds"], 2),
        },
        # compaction drops resends: the hourly counts after are the distinct ids before
        "same_answers_after_compaction": before["funnel_users"] == after["funnel_users"]
        and after["events_per_hour_rows"] == before_layout["distinct_event_ids"],
        "compaction_seconds": {
            "ours": round(ours_s, 2),
            "trino_per_hour": round(trino_plan_s, 2),
            "trino_one_statement": round(trino_whole_s, 2),
        },
        "trino_over_ours_time": {
            "trino_per_hour": round(trino_plan_s / ours_s, 2),
            "trino_one_statement": round(trino_whole_s / ours_s, 2),
        },
        "after": layouts,
        "results": {
            "ours": _counts(ours.to_dict()),
            "trino_per_hour": _counts(by_trino.to_dict()),
            "trino_one_statement": _counts(batched.to_dict()),
        },
        "ours_manifests": manifests.to_dict(),
    }


def _counts(result: dict[str, Any]) -> dict[str, Any]:
    keys = ("groups_committed", "groups_skipped", "files_rewritten", "files_added")
    return {k: result[k] for k in (*keys, "duplicates_removed", "replace_commits")}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--hours", type=int, default=24)
    parser.add_argument("--target-file-size", type=int, default=128 * 2**20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--heap", default="4G")
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--json", action="store_true", help="Print the report as JSON.")
    parser.add_argument("--save", type=Path, default=None, help="Also write the JSON here.")
    args = parser.parse_args()
    report = run(args)
    if args.save:
        args.save.write_text(json.dumps(report, indent=2) + "\n")
    if args.json:
        print(json.dumps(report, indent=2))
        return
    t, f, c = report["table"], report["fragmented"], report["compacted"]
    print(
        f"table: {t['data_files']} files, {t['events']:,} events ({report['machine']}, Trino heap {args.heap})"
    )
    print(
        f"events per hour over a day: {f['events_per_hour_seconds']:.2f} s fragmented, "
        f"{c['events_per_hour_seconds']:.2f} s compacted (x{report['query_speedup']['events_per_hour']})"
    )
    print(
        f"4-step funnel (1 day):      {f['funnel_seconds']:.2f} s fragmented, "
        f"{c['funnel_seconds']:.2f} s compacted (x{report['query_speedup']['funnel']}); "
        f"same answers: {report['same_answers_after_compaction']}"
    )
    secs = report["compaction_seconds"]
    for key, label in (
        ("ours", "ours (Python)"),
        ("trino_per_hour", "Trino, 1 h/statement"),
        ("trino_one_statement", "Trino, 1 statement"),
    ):
        lay = report["after"][key]
        ratio = "" if key == "ours" else f" (x{report['trino_over_ours_time'][key]} ours)"
        print(
            f"{label:<20} {secs[key]:>7.2f} s{ratio}: {lay['files']} files, "
            f"{lay['files_sorted']}/{lay['files']} sorted, {lay['rows']:,} rows, "
            f"{lay['distinct_event_ids']:,} distinct ids"
        )


if __name__ == "__main__":
    main()
