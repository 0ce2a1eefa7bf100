"""Writer throughput and commit latency, against baselines measured in the same run.

    python benchmarks/bench_writer.py [--events 1000000] [--micro-batches 1000]

Prints events/s for Arrow input and for gzip NDJSON input through the whole writer,
each as a ratio to a plain ``pyarrow.parquet.write_table`` of the same rows (the
physical floor), to a plain pyiceberg ``append`` (the naive peer), and, for NDJSON, to
gunzip + ``pyarrow.json`` parsing alone; then the commit latency of the 10th and the
1,000th micro-batch commit.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.json as pj
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import fresh_home, synthetic_events, timed
from catalog import open_catalog
from lakehouse.tables import ensure_tables
from writers import EventWriter, ingest


def raw_parquet(table, repeat: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        seconds, _ = timed(
            lambda: pq.write_table(table, f"{tmp}/x.parquet", compression="zstd"), repeat
        )
    return seconds


def plain_append(table, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        with fresh_home() as settings:
            tables, _ = ensure_tables(open_catalog(settings), settings.table)
            arrow = table.cast(tables.events.schema().as_arrow())
            start = time.perf_counter()
            tables.events.append(arrow)
            best = min(best, time.perf_counter() - start)
    return best


def writer_arrow(table, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        with fresh_home() as settings:
            tables, _ = ensure_tables(open_catalog(settings), settings.table)
            writer = EventWriter(settings, tables=tables)
            start = time.perf_counter()
            writer.write(table)
            result = writer.close()
            best = min(best, time.perf_counter() - start)
            assert result.records_written == table.num_rows, result
    return best


def write_ndjson_files(table, folder: Path, files: int) -> list[Path]:
    rows = table.to_pylist()
    per = -(-len(rows) // files)
    paths = []
    for k in range(files):
        part = rows[k * per : (k + 1) * per]
        lines = "\n".join(
            json.dumps(
                {
                    **r,
                    "client_ts": r["client_ts"].isoformat(),
                    "server_ts": r["server_ts"].isoformat(),
                }
            )
            for r in part
        )
        path = folder / f"{k:04d}.ndjson.gz"
        path.write_bytes(gzip.compress((lines + "\n").encode(), compresslevel=6))
        paths.append(path)
    return paths


def parse_only(paths: list[Path], repeat: int) -> float:
    def run() -> int:
        n = 0
        for p in paths:
            n += pj.read_json(io.BytesIO(gzip.decompress(p.read_bytes()))).num_rows
        return n

    seconds, _ = timed(run, repeat)
    return seconds


def writer_ndjson(folder: Path, expected: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        with fresh_home() as settings:
            ensure_tables(open_catalog(settings), settings.table)
            start = time.perf_counter()
            result = ingest([str(folder)], settings)
            best = min(best, time.perf_counter() - start)
            assert result.records_written == expected, result
    return best


def commit_latency(
    batches: int, per_batch: int, cpu: list[float] | None = None
) -> tuple[list[float], list[float]]:
    """Flush time and catalog-commit time of each of ``batches`` micro-batches; the CPU
    time of each commit (all threads of the process: robust to a busy machine) is added
    to ``cpu`` when given."""
    from writers import commit as commit_module

    commit_times: list[float] = []
    original = commit_module.commit_events

    def timed_commit(*args, **kwargs):
        start, start_cpu = time.perf_counter(), time.process_time()
        try:
            return original(*args, **kwargs)
        finally:
            commit_times.append(time.perf_counter() - start)
            if cpu is not None:
                cpu.append(time.process_time() - start_cpu)

    commit_module.commit_events = timed_commit
    flush_times: list[float] = []
    try:
        with fresh_home() as settings:
            tables, _ = ensure_tables(open_catalog(settings), settings.table)
            writer = EventWriter(settings, tables=tables)
            source = synthetic_events(batches * per_batch, hours=24 * 7, seed=3)
            for b in range(batches):
                writer.write(source.slice(b * per_batch, per_batch))
                start = time.perf_counter()
                writer.flush()
                flush_times.append(time.perf_counter() - start)
                if (b + 1) % 100 == 0:
                    print(
                        f"  micro-batch {b + 1}/{batches}: flush {flush_times[-1] * 1000:.1f} ms",
                        file=sys.stderr,
                    )
    finally:
        commit_module.commit_events = original
    return flush_times, commit_times


def window(values: list[float], at: int, half: int = 5) -> float:
    """Median around the at-th (1-based) value, to smooth one-off hiccups."""
    lo, hi = max(0, at - 1 - half), min(len(values), at + half)
    return statistics.median(values[lo:hi])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument(
        "--files", type=int, default=20, help="NDJSON files the events are spread over"
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--micro-batches", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--only", choices=["all", "throughput", "latency"], default="all")
    args = parser.parse_args()
    if args.only != "latency":
        throughput(args)
    if args.only != "throughput" and args.micro_batches >= 10:
        latency(args)


def throughput(args: argparse.Namespace) -> None:
    n = args.events
    table = synthetic_events(n)
    print(f"{n:,} events, 7 columns, 24 hour partitions; best of {args.repeat}")
    t_raw = raw_parquet(table, args.repeat)
    t_plain = plain_append(table, args.repeat)
    t_arrow = writer_arrow(table, args.repeat)
    print(f"raw parquet write_table     {n / t_raw:>12,.0f} events/s  ({t_raw:.3f} s)")
    print(f"plain pyiceberg append      {n / t_plain:>12,.0f} events/s  ({t_plain:.3f} s)")
    print(f"writer, Arrow input         {n / t_arrow:>12,.0f} events/s  ({t_arrow:.3f} s)")
    print(f"  ratio to raw parquet      {t_raw / t_arrow:>12.2f}   (target >= 0.50)")
    print(f"  ratio to plain append     {t_plain / t_arrow:>12.2f}")

    with tempfile.TemporaryDirectory() as tmp:
        paths = write_ndjson_files(table, Path(tmp), args.files)
        t_parse = parse_only(paths, args.repeat)
        t_json = writer_ndjson(Path(tmp), n, args.repeat)
    print(f"gunzip + pyarrow.json only  {n / t_parse:>12,.0f} events/s  ({t_parse:.3f} s)")
    print(
        f"writer, gzip NDJSON ingest  {n / t_json:>12,.0f} events/s  ({t_json:.3f} s)   (target >= 500,000)"
    )
    print(f"  ratio to parse only       {t_parse / t_json:>12.2f}")
    print(f"  ratio to raw parquet      {t_raw / t_json:>12.2f}")


def latency(args: argparse.Namespace) -> None:
    if True:
        cpu: list[float] = []
        flush, commits = commit_latency(args.micro_batches, args.batch_size, cpu)
        last = len(flush)
        f10, flast = window(flush, 10), window(flush, last)
        c10, clast = window(commits, 10), window(commits, last)
        print(f"micro-batches of {args.batch_size} events: {last}")
        print(
            f"  commit latency #10        {c10 * 1000:>9.1f} ms   whole flush {f10 * 1000:.1f} ms"
        )
        print(
            f"  commit latency #{last:<9}{clast * 1000:>9.1f} ms   whole flush {flast * 1000:.1f} ms"
        )
        print(
            f"  ratio #{last} / #10{'':<8}{clast / c10:>9.2f}      whole flush {flast / f10:.2f}   (target <= 2.0)"
        )
        u10, ulast = window(cpu, 10), window(cpu, last)
        print(
            f"  commit CPU time #10 {u10 * 1000:.1f} ms, #{last} {ulast * 1000:.1f} ms: "
            f"ratio {ulast / u10:.2f}; slowest commit {max(commits) * 1000:.0f} ms"
        )


if __name__ == "__main__":
    main()
