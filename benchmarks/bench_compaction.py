"""Compaction throughput and memory, and read times before/after, measured in one run.

    python benchmarks/bench_compaction.py                       # 5,000 files, 5M events
    python benchmarks/bench_compaction.py --files 500 --events 500000   # quick check

Builds a table the way writers leave it: ``--files`` small sorted micro-batch files over
``--hours`` hour partitions (each declaring the sort order, as the writers do), 5% of them
late batches into closed hours, 1% resends (duplicate event_ids), committed as many
appends. Compacts in a child process (throughput in MB/s of input files read and in
events/s; peak RSS and Arrow memory pool peak of that process), rewrites the manifests,
then times a full scan and a one-hour range read of the snapshot before compaction (time
travel) and of the compacted one, alternating, best of ``--repeat`` each: the baseline
is measured in the same run, under the same machine load, and the speed-ups are ratios.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import itertools

from benchmarks.common import BASE, TS, fresh_home, synthetic_events
from catalog import open_catalog
from lakehouse.schema import SUMMARY_KIND, SUMMARY_LATE, SUMMARY_LATE_HOURS
from lakehouse.settings import Settings
from lakehouse.tables import ensure_tables

HOUR_US = 3_600_000_000


def _sorted(batch: pa.Table) -> pa.Table:
    return batch.sort_by([("client_ts", "ascending"), ("event_id", "ascending")])


def _hour_slices(batch: pa.Table) -> list[tuple[int, pa.Table]]:
    micros = batch.column("client_ts").cast(pa.int64()).to_numpy()
    hours = micros // HOUR_US
    cuts = np.flatnonzero(np.diff(hours)) + 1
    bounds = [0, *cuts.tolist(), len(hours)]
    return [(int(hours[lo]), batch.slice(lo, hi - lo)) for lo, hi in itertools.pairwise(bounds)]


def micro_batches(files: int, events: int, hours: int, seed: int) -> list[tuple[str, pa.Table]]:
    """(kind, sorted batch): on-time micro-batches in arrival order, late ones into old
    hours, resends of earlier events with a later server_ts."""
    rng = np.random.default_rng(seed)
    n_late, n_resend = max(1, files // 20), max(1, files // 100)
    n_main = max(1, files - n_late - n_resend)
    per = max(1, events // files)
    main = synthetic_events(per * n_main, hours=hours, seed=seed)
    batches: list[tuple[str, pa.Table]] = [
        ("on-time", _sorted(main.slice(i * per, per))) for i in range(n_main)
    ]
    base_us = int(BASE.timestamp() * 1_000_000)
    for j in range(n_late):
        late = synthetic_events(per, hours=1, seed=seed + 1000 + j, offset=10**9 + j * per)
        hour = int(rng.integers(0, max(1, hours - 2)))
        shift = pa.array(np.full(per, hour * HOUR_US, dtype=np.int64))
        client = pa.compute.add(late.column("client_ts").cast(pa.int64()), shift)
        server = pa.array(np.full(per, base_us + hours * HOUR_US, dtype=np.int64))
        late = late.set_column(3, "client_ts", client.cast(TS)).set_column(
            4, "server_ts", server.cast(TS)
        )
        batches.append(("late", _sorted(late)))
    for _ in range(n_resend):
        source = batches[int(rng.integers(0, n_main))][1]
        picked = source.take(
            pa.array(rng.choice(source.num_rows, min(200, source.num_rows), replace=False))
        )
        server = pa.compute.add(picked.column("server_ts").cast(pa.int64()), 30_000_000).cast(TS)
        batches.append(("late", _sorted(picked.set_column(4, "server_ts", server))))
    order = (
        rng.permutation(len(batches) - n_main) + n_main
    )  # late and resends interleaved at the end
    return batches[:n_main] + [batches[i] for i in order]


def build(settings: Settings, files: int, events: int, hours: int, seed: int) -> dict[str, Any]:
    from maintenance.parquet import write_hour_file

    table = ensure_tables(open_catalog(settings), settings.table)[0].events
    arrow_schema = table.schema().as_arrow()
    metadata = table.metadata
    batches = micro_batches(files, events, hours, seed)
    tasks = []
    for kind, batch in batches:
        for hour, rows in _hour_slices(batch.cast(arrow_schema)):
            tasks.append((kind, hour, rows))
    write_id = uuid.uuid4()

    def write(i: int) -> tuple[str, int, Any]:
        kind, hour, rows = tasks[i]
        name = f"00000-{i}-{write_id}.parquet"  # a writer's file name
        return kind, hour, write_hour_file(metadata, table.io, rows, hour=hour, name=name)

    start = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        written = list(pool.map(write, range(len(tasks))))
    commits = 0
    for lo in range(0, len(written), 50):  # many appends, each of one kind
        for kind in ("on-time", "late"):
            chunk = [w for w in written[lo : lo + 50] if w[0] == kind]
            if not chunk:
                continue
            props = {SUMMARY_KIND: kind}
            if kind == "late":
                labels = sorted(
                    {
                        (BASE + timedelta(hours=h - int(BASE.timestamp()) // 3600)).strftime(
                            "%Y-%m-%dT%H"
                        )
                        for _, h, _ in chunk
                    }
                )
                props.update({SUMMARY_LATE: "true", SUMMARY_LATE_HOURS: ",".join(labels)})
            with (
                table.transaction() as tx,
                tx.update_snapshot(snapshot_properties=props).fast_append() as fa,
            ):
                for _, _, data_file in chunk:
                    fa.append_data_file(data_file)
            commits += 1
    table.refresh()
    summary = table.current_snapshot().summary
    return {
        "data_files": int(summary["total-data-files"]),
        "events": int(summary["total-records"]),
        "bytes": int(summary["total-files-size"]),
        "commits": commits,
        "build_seconds": round(time.perf_counter() - start, 1),
    }


def read_times(
    settings: Settings, hours: int, repeat: int, before_id: int
) -> dict[str, dict[str, float]]:
    """Best time of a full scan and a one-hour range read, of the snapshot before
    compaction (time travel: its files are still there) and of the current one,
    alternating, so both are measured under the same machine load."""
    from pyiceberg.expressions import And, GreaterThanOrEqual, LessThan

    table = open_catalog(settings).load_table(settings.table.identifier)
    after_id = table.current_snapshot().snapshot_id
    hour = BASE + timedelta(hours=hours // 2)
    flt = And(
        GreaterThanOrEqual("client_ts", hour.isoformat()),
        LessThan("client_ts", (hour + timedelta(hours=1)).isoformat()),
    )
    out: dict[str, dict[str, float]] = {"before": {}, "after": {}}
    for name, row_filter in (("full_scan", None), ("one_hour", flt)):
        for label in ("before", "after"):
            out[label][f"{name}_seconds"] = float("inf")
        for _ in range(repeat):
            for label, snapshot_id in (("before", before_id), ("after", after_id)):
                kwargs: dict[str, Any] = {"snapshot_id": snapshot_id}
                if row_filter is not None:
                    kwargs["row_filter"] = row_filter
                start = time.perf_counter()
                rows = table.scan(**kwargs).to_arrow().num_rows
                seconds = time.perf_counter() - start
                key = f"{name}_seconds"
                out[label][key] = round(min(out[label][key], seconds), 4)
                out[label][f"{name}_rows"] = rows
    return out


def _peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM: per address space, so not inherited from
    the parent the way ``ru_maxrss`` is across fork+exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_seconds() -> float:
    """CPU time of this process so far, all threads, user and system."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _baseline_child(home: str, queue: Any) -> None:
    """The same live files read and written back as one Parquet dataset with pyarrow
    alone (Arrow's threads, the writers' compression): what the hardware does now."""
    import pyarrow.dataset as ds

    from lakehouse.datafiles import parquet_options
    from maintenance.paths import canonical

    settings = Settings.from_env(env={}, home=home)
    table = open_catalog(settings).load_table(settings.table.identifier)
    paths = [canonical(t.file.file_path) for t in table.scan().plan_files()]
    names = table.schema().as_arrow().names
    options = parquet_options(table.properties, names)
    out = Path(home) / "baseline-out"
    rss_start = _peak_rss_mb()
    cpu = _cpu_seconds()
    start = time.perf_counter()
    source = ds.dataset(paths, format="parquet")
    ds.write_dataset(
        source,
        out,
        format="parquet",
        file_options=ds.ParquetFileFormat().make_write_options(
            compression=options["compression"],
            compression_level=options["compression_level"],
            use_dictionary=options["use_dictionary"],
        ),
        max_rows_per_file=2_000_000,
        max_rows_per_group=1_000_000,
        existing_data_behavior="overwrite_or_ignore",
    )
    seconds = time.perf_counter() - start
    cpu = _cpu_seconds() - cpu
    rows = ds.dataset(out, format="parquet").count_rows()
    queue.put(
        {
            "seconds": seconds,
            "cpu_seconds": cpu,
            "records": rows,
            "rss_start_mb": rss_start,
            "rss_peak_mb": _peak_rss_mb(),
        }
    )


def _compact_child(home: str, target: int, max_commits: int | None, queue: Any) -> None:
    from maintenance import CompactionOptions, compact, rewrite_manifests

    settings = Settings.from_env(env={}, home=home)
    table = open_catalog(settings).load_table(settings.table.identifier)
    rss_start = _peak_rss_mb()
    cpu = _cpu_seconds()
    start = time.perf_counter()
    result = compact(table, CompactionOptions(target_file_size=target, max_commits=max_commits))
    seconds = time.perf_counter() - start
    cpu = _cpu_seconds() - cpu
    start = time.perf_counter()
    manifests = rewrite_manifests(table)
    manifest_seconds = time.perf_counter() - start
    queue.put(
        {
            "seconds": seconds,
            "cpu_seconds": cpu,
            "manifest_seconds": manifest_seconds,
            "result": result.to_dict(),
            "manifests": manifests.to_dict(),
            "rss_start_mb": rss_start,
            "rss_peak_mb": _peak_rss_mb(),
            "arrow_peak_mb": pa.default_memory_pool().max_memory() / 2**20,
        }
    )


def in_child(target: Any, *args: Any) -> dict[str, Any]:
    """Run ``target(*args, queue)`` in a fresh process (its own peak RSS); its report."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, queue))
    proc.start()
    out = queue.get()
    proc.join()
    return out  # type: ignore[no-any-return]


def compact_in_child(
    settings: Settings, target: int, max_commits: int | None = None
) -> dict[str, Any]:
    return in_child(_compact_child, str(settings.home), target, max_commits)


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--hours", type=int, default=24)
    parser.add_argument("--target-file-size", type=int, default=128 * 2**20)
    parser.add_argument(
        "--max-commits", type=int, default=None, help="Compaction commits at most (default 10)."
    )
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with fresh_home("bench-compaction-") as settings:
        built = build(settings, args.files, args.events, args.hours, args.seed)
        before_id = (
            open_catalog(settings)
            .load_table(settings.table.identifier)
            .current_snapshot()
            .snapshot_id
        )
        load_before = load_average()
        baseline = in_child(_baseline_child, str(settings.home))
        child = compact_in_child(settings, args.target_file_size, args.max_commits)
        load_after = load_average()
        reads = read_times(settings, args.hours, args.repeat, before_id)
        before, after = reads["before"], reads["after"]
        table = open_catalog(settings).load_table(settings.table.identifier)
        files_after = int(table.current_snapshot().summary["total-data-files"])
    result = child["result"]
    mb = result["bytes_rewritten"] / 2**20
    events_per_s = result["records_rewritten"] / child["seconds"]
    baseline_per_s = baseline["records"] / baseline["seconds"]
    report = {
        "table": built,
        "load_average": {"before": load_before, "after": load_after},
        "files_after": files_after,
        "compaction_seconds": round(child["seconds"], 2),
        "manifest_rewrite_seconds": round(child["manifest_seconds"], 2),
        "throughput_mb_per_s": round(mb / child["seconds"], 1),
        "throughput_events_per_s": round(events_per_s),
        "baseline_events_per_s": round(baseline_per_s),
        "baseline_seconds": round(baseline["seconds"], 2),
        "compaction_cpu_seconds": round(child["cpu_seconds"], 2),
        "baseline_cpu_seconds": round(baseline["cpu_seconds"], 2),
        "baseline_peak_rss_mb": round(baseline["rss_peak_mb"]),
        "throughput_vs_baseline": round(events_per_s / baseline_per_s, 2),
        "peak_rss_mb": round(child["rss_peak_mb"]),
        "rss_before_compaction_mb": round(child["rss_start_mb"]),
        "arrow_pool_peak_mb": round(child["arrow_peak_mb"]),
        "compaction": {
            k: result[k]
            for k in (
                "groups_committed",
                "commits",
                "groups_failed",
                "files_rewritten",
                "files_added",
                "bytes_rewritten",
                "bytes_added",
                "records_rewritten",
                "duplicates_removed",
                "replace_commits",
                "overwrite_commits",
            )
        },
        "manifests": child["manifests"],
        "before": before,
        "after": after,
        "full_scan_speedup": round(before["full_scan_seconds"] / after["full_scan_seconds"], 2),
        "one_hour_speedup": round(before["one_hour_seconds"] / after["one_hour_seconds"], 2),
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    t, c = built, report["compaction"]
    print(
        f"table: {t['data_files']:,} files, {t['events']:,} events, {t['bytes'] / 2**20:.1f} MB on disk, "
        f"{t['commits']} commits, {args.hours} hour partitions (built in {t['build_seconds']} s)"
    )
    print(
        f"compaction: {c['files_rewritten']:,} files -> {c['files_added']} files in {c['groups_committed']} groups "
        f"and {c['commits']} commits, "
        f"{c['duplicates_removed']:,} duplicates removed, {report['compaction_seconds']} s "
        f"(+ manifests {report['manifest_rewrite_seconds']} s: "
        f"{report['manifests']['manifests_before']} -> {report['manifests']['manifests_after']})"
    )
    print(
        f"  throughput        {report['throughput_mb_per_s']:>10} MB/s  {report['throughput_events_per_s']:>12,} events/s"
    )
    print(
        f"  baseline          {report['baseline_events_per_s']:>27,} events/s  (pyarrow alone: the same "
        f"files read and written as one Parquet dataset, {report['baseline_seconds']} s, "
        f"peak RSS {report['baseline_peak_rss_mb']} MB)"
    )
    print(f"  ratio             {report['throughput_vs_baseline']:>10}x of the baseline, same run")
    print(
        f"  CPU time          {report['compaction_cpu_seconds']:>10} s  (baseline "
        f"{report['baseline_cpu_seconds']} s; all threads, user + system: the cost that "
        "machine load does not change)"
    )
    print(
        f"  peak RSS          {report['peak_rss_mb']:>10} MB  (process at start {report['rss_before_compaction_mb']} MB;"
        f" Arrow pool peak {report['arrow_pool_peak_mb']} MB; target < 1024 MB)"
    )
    print(f"  load average      {load_before} before, {load_after} after (1, 5, 15 min)")
    for name in ("full_scan", "one_hour"):
        b, a = before[f"{name}_seconds"], after[f"{name}_seconds"]
        print(
            f"{name.replace('_', ' '):<10} read   before {b:>8.3f} s  after {a:>8.3f} s  "
            f"speed-up {b / a:>6.2f}x  (target >= 3x; {after[f'{name}_rows']:,} rows)"
        )


if __name__ == "__main__":
    main()
