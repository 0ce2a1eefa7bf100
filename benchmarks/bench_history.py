"""A table over months of hours: maintenance, incremental S3 ingest, commit latency and
a replay, each as a ratio to a baseline measured in the same run.

    python benchmarks/bench_history.py [--quick] [--only maintain|s3|latency|replay]

Parts (each runs in its own process):

* maintain -- a table of ``--days`` (90) days of hour partitions, compacted except the
  last 3 days, which hold many small on-time files plus late files scattered over them;
  the old days' snapshots are expired before the last 3 days come, as the default
  retention would have done (``--keep-old-snapshots`` keeps them).
  ``lakehouse maintain run`` on it, over the same command on the same files folded into
  24 hour partitions of a fresh table (target <= 2x); the snapshots one run added
  (target <= 12).
* s3 -- a moto server on 127.0.0.1: an ingest of 1 new object into a Firehose-style
  zone of ``--objects`` (20,000) ingested objects, over the same ingest into a fresh zone
  (target <= 1.5x), with the S3 LIST requests and all requests each made (from the
  server's request log). Each ingest starts without this process's caches of table files
  and metadata, as a new ``lakehouse ingest`` process would.
* latency -- commit latency of the ``--micro-batches``-th (7,200: a commit a minute for
  the default 5-day retention) micro-batch over the 10th (target <= 2x).
* replay -- ``--replay-files`` (3,000) NDJSON landing files over ``--replay-hours``
  (1,900) hours, a quarter of them from offline devices (events up to 3 days old),
  arriving over ``--replay-runs`` (30) ``ingest`` runs, then one ``maintain run``;
  maintenance time over the ingest runs' time (target <= 3x).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import BASE, TS, fresh_home, synthetic_events

HOUR_US = 3_600_000_000
RECENT_DAYS = 3


# -- helpers --------------------------------------------------------------------------


def shifted(rows: pa.Table, client_us: int, server_us: int | None = None) -> pa.Table:
    """``rows`` with ``client_ts`` moved by ``client_us`` and ``server_ts`` by
    ``server_us`` (the same by default)."""

    def move(name: str, by: int) -> pa.Array:
        col = rows.column(name).cast(pa.int64())
        return pa.compute.add(col, pa.scalar(by, pa.int64())).cast(TS)

    out = rows.set_column(3, "client_ts", move("client_ts", client_us))
    return out.set_column(
        4, "server_ts", move("server_ts", client_us if server_us is None else server_us)
    )


def maintain_run(home: Path) -> tuple[float, dict[str, Any]]:
    """``lakehouse maintain run --json`` in this process (no interpreter start-up in the
    time): seconds and the result object."""
    from click.testing import CliRunner

    from lakehouse.cli.main import cli

    start = time.perf_counter()
    result = CliRunner().invoke(cli, ["maintain", "run", "--home", str(home), "--json"])
    seconds = time.perf_counter() - start
    if result.exit_code not in (0, 1):
        raise RuntimeError(f"maintain run exited {result.exit_code}: {result.output[-2000:]}")
    lines = [ln for ln in result.stdout.splitlines() if ln.startswith("{")]
    return seconds, json.loads(lines[-1]) if lines else {}


def snapshots_since(settings: Any, sequence_number: int) -> int:
    from catalog import open_catalog

    table = open_catalog(settings).load_table(settings.table.identifier)
    return sum(1 for s in table.metadata.snapshots if (s.sequence_number or 0) > sequence_number)


def last_sequence_number(settings: Any) -> int:
    from catalog import open_catalog

    table = open_catalog(settings).load_table(settings.table.identifier)
    return int(table.metadata.last_sequence_number)


# -- maintain -------------------------------------------------------------------------


def recent_batches(args: argparse.Namespace) -> list[tuple[int, pa.Table]]:
    """(receipt offset, rows) of the last 3 days: ``--per-hour`` on-time micro-batches
    per hour, then ``--late-batches`` late batches each over 8 random hours of them.
    Client times are relative to the first recent hour."""
    rng = np.random.default_rng(7)
    hours = RECENT_DAYS * 24
    per = args.batch_events
    out: list[tuple[int, pa.Table]] = []
    offset = 10**8
    for h in range(hours):
        for _ in range(args.per_hour):
            rows = synthetic_events(per, hours=1, seed=offset, offset=offset)
            out.append((h * HOUR_US, shifted(rows, h * HOUR_US)))
            offset += per
    for _ in range(args.late_batches):
        parts = []
        for h in rng.choice(hours, 8, replace=False).tolist():
            rows = synthetic_events(per // 8 + 1, hours=1, seed=offset, offset=offset)
            offset += per // 8 + 1
            # received a day after the recent window began: late for every hour before
            parts.append(shifted(rows, int(h) * HOUR_US, hours * HOUR_US + HOUR_US))
        out.append((hours * HOUR_US, pa.concat_tables(parts)))
    return out


def write_table(
    settings: Any,
    old_days: int,
    recent: list[tuple[int, pa.Table]],
    fold: bool,
    *,
    expire_old: bool = False,
) -> None:
    """``old_days`` days of compacted history (one flush per day: a file per hour), then
    the recent batches (a flush each), after the old days or folded into one day. With
    ``expire_old`` the old days' snapshots are expired before the recent batches come,
    as the default retention (5 days) would have done over the table's life: their data
    files stay live, only the snapshots that added them are gone."""
    from writers import EventWriter

    base = old_days * 24 * HOUR_US
    with EventWriter(settings, max_records=10**9, max_bytes=2**40, max_age=10**9) as writer:
        for d in range(old_days):
            day = synthetic_events(24 * 200, hours=24, seed=d, offset=d * 10**6)
            writer.write(shifted(day, d * 24 * HOUR_US))
            writer.flush()
        if old_days and expire_old:
            from catalog import open_catalog
            from maintenance import expire_snapshots

            table = open_catalog(settings).load_table(settings.table.identifier)
            expire_snapshots(table, retention=timedelta(0))
        for _, rows in recent:
            if fold:  # the same hour of day, on the first day
                client = rows.column("client_ts").cast(pa.int64()).to_numpy()
                day = (client - int(BASE.timestamp() * 1e6)) // (24 * HOUR_US) * (24 * HOUR_US)
                moved = pa.array(client - day, pa.int64()).cast(TS)
                server = rows.column("server_ts").cast(pa.int64()).to_numpy()
                rows = rows.set_column(3, "client_ts", moved).set_column(
                    4, "server_ts", pa.array(server - day, pa.int64()).cast(TS)
                )
            else:
                rows = shifted(rows, base)
            writer.write(rows)
            writer.flush()


def part_maintain(args: argparse.Namespace) -> dict[str, Any]:
    recent = recent_batches(args)
    files = sum(1 for _ in recent)
    out: dict[str, Any] = {
        "days": args.days,
        "recent_batches": files,
        "old_snapshots_kept": args.keep_old_snapshots,
    }
    # both measured runs in this process: a run over a small table first loads the code
    # they share, so the first measured run does not also pay the imports
    with fresh_home("bench-history-warm-") as settings:
        write_table(settings, 1, recent[:4], False)
        maintain_run(settings.home)
    for name, old_days, fold in (("history", args.days - RECENT_DAYS, False), ("24h", 0, True)):
        with fresh_home(f"bench-history-{name}-") as settings:
            start = time.perf_counter()
            write_table(settings, old_days, recent, fold, expire_old=not args.keep_old_snapshots)
            out[f"{name}_build_s"] = round(time.perf_counter() - start, 1)
            before = last_sequence_number(settings)
            seconds, result = maintain_run(settings.home)
            out[f"{name}_maintain_s"] = round(seconds, 2)
            out[f"{name}_snapshots_added"] = snapshots_since(settings, before)
            out[f"{name}_result"] = {k: v for k, v in result.items() if isinstance(v, int | float)}
        print(
            f"  [{name}] built in {out[f'{name}_build_s']} s, maintain run {seconds:.1f} s",
            file=sys.stderr,
        )
    out["ratio"] = out["history_maintain_s"] / out["24h_maintain_s"]
    return out


# -- s3 -------------------------------------------------------------------------------

ACCESS_KEY, SECRET_KEY, REGION = "bench", "bench-secret", "us-east-1"


@contextmanager
def moto_server(log: Path) -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(
                            f"moto server did not start: {log.read_text()[-2000:]}"
                        ) from None
                    time.sleep(0.1)
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            proc.wait(timeout=20)


_COLOUR = re.compile(r"\x1b\[[0-9;]*m")
_REQUEST = re.compile(r'"(GET|PUT|HEAD|POST|DELETE) /')


def cold() -> None:
    """Forget what this process cached of table files and metadata, so an ingest is
    measured as a new ``lakehouse ingest`` process would run it."""
    from catalog.files import FILE_CACHE
    from catalog.metadata import METADATA_CACHE

    FILE_CACHE.clear()
    METADATA_CACHE.clear()


def requests_in(log: Path, since: int, bucket: str) -> tuple[int, int, int]:
    """(LIST requests on ``bucket``, all requests, new log offset) after ``since``."""
    with log.open("rb") as f:
        f.seek(since)
        text = f.read().decode(errors="replace")
        end = f.tell()
    text = _COLOUR.sub("", text)  # the server colours 206 and 404 lines
    lines = [ln for ln in text.splitlines() if _REQUEST.search(ln)]
    listing = re.compile(rf'"GET /{re.escape(bucket)}/?\?[^ ]*(list-type|prefix=|delimiter=)')
    return sum(1 for ln in lines if listing.search(ln)), len(lines), end


def put_objects(s3: Any, bucket: str, zone: str, first: int, count: int) -> None:
    """Firehose-style keys ``zone/YYYY/MM/DD/HH/stream-...``, sorting by time, each a small
    NDJSON object of 3 events."""

    def put(i: int) -> None:
        at = BASE + timedelta(minutes=i)
        lines = [
            json.dumps(
                {
                    "event_id": f"{zone}-{i}-{j}",
                    "user_id": f"u{i % 97}",
                    "event_type": "view",
                    "client_ts": (at + timedelta(seconds=j)).isoformat(),
                }
            )
            for j in range(3)
        ]
        key = f"{zone}/{at:%Y/%m/%d/%H}/stream-1-{at:%Y-%m-%d-%H-%M-%S}-{uuid.uuid4()}.ndjson"
        s3.put_object(Bucket=bucket, Key=key, Body=("\n".join(lines) + "\n").encode())

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, range(first, first + count)))


def part_s3(args: argparse.Namespace) -> dict[str, Any]:
    scratch = Path(tempfile.mkdtemp(prefix="bench-history-s3-"))
    try:
        return _s3(args, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _s3(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    import boto3

    from catalog import open_catalog
    from lakehouse.settings import Settings
    from lakehouse.tables import ensure_tables
    from writers import ingest

    log = scratch / "moto.log"
    out: dict[str, Any] = {"objects": args.objects}
    with moto_server(log) as endpoint:
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )
        bucket = "landing"
        s3.create_bucket(Bucket=bucket)
        props = {
            "S3__ENDPOINT": endpoint,
            "S3__REGION": REGION,
            "S3__ACCESS_KEY_ID": ACCESS_KEY,
            "S3__SECRET_ACCESS_KEY": SECRET_KEY,
            "S3__PATH_STYLE_ACCESS": "true",
        }
        for key, value in props.items():
            os.environ[f"PYICEBERG_CATALOG__LAKEHOUSE__{key}"] = value

        def one_ingest(home: Path, zone: str) -> tuple[float, int, int, Any, float]:
            os.environ["PYICEBERG_CATALOG__LAKEHOUSE__WAREHOUSE"] = (
                f"s3://{bucket}/warehouse-{home.name}"
            )
            settings = Settings.from_env(env={}, home=str(home))
            ensure_tables(open_catalog(settings), settings.table)  # `lakehouse init`, not timed
            _, _, mark = requests_in(log, 0, bucket)
            cold()
            start, cpu = time.perf_counter(), time.process_time()
            result = ingest([f"s3://{bucket}/{zone}/"], settings)
            seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
            time.sleep(0.2)  # the server logs a request after answering it
            lists, total, _ = requests_in(log, mark, bucket)
            return seconds, lists, total, result, cpu

        root = scratch / "homes"
        start = time.perf_counter()
        put_objects(s3, bucket, "big", 0, args.objects)
        out["upload_s"] = round(time.perf_counter() - start, 1)
        seconds, lists, _, result, _ = one_ingest(root / "big", "big")
        out["first_ingest_s"], out["first_ingest_lists"] = round(seconds, 1), lists
        assert result.records_written == 3 * args.objects, result
        print(
            f"  {args.objects:,} objects uploaded in {out['upload_s']} s, first ingest {seconds:.1f} s",
            file=sys.stderr,
        )
        fresh, incremental = [], []
        for k in range(args.repeat):
            put_objects(s3, bucket, f"fresh{k}", args.objects + k, 1)
            fresh.append(one_ingest(root / f"fresh{k}", f"fresh{k}"))
            put_objects(s3, bucket, "big", args.objects + k, 1)
            incremental.append(one_ingest(root / "big", "big"))
            assert incremental[-1][3].records_written == 3 and fresh[-1][3].records_written == 3
        out["fresh_s"] = statistics.median(r[0] for r in fresh)
        out["incremental_s"] = statistics.median(r[0] for r in incremental)
        out["fresh_lists"] = max(r[1] for r in fresh)
        out["incremental_lists"] = max(r[1] for r in incremental)
        out["fresh_requests"] = max(r[2] for r in fresh)
        out["incremental_requests"] = max(r[2] for r in incremental)
        out["fresh_cpu_s"] = statistics.median(r[4] for r in fresh)
        out["incremental_cpu_s"] = statistics.median(r[4] for r in incremental)
    out["ratio"] = out["incremental_s"] / out["fresh_s"]
    out["cpu_ratio"] = out["incremental_cpu_s"] / out["fresh_cpu_s"]
    return out


# -- latency --------------------------------------------------------------------------


def part_latency(args: argparse.Namespace) -> dict[str, Any]:
    from benchmarks.bench_writer import commit_latency, window

    cpu: list[float] = []
    flush, commits = commit_latency(args.micro_batches, 100, cpu)
    last = len(commits)
    return {
        "cpu_10_ms": window(cpu, 10) * 1000,
        "cpu_last_ms": window(cpu, last) * 1000,
        "cpu_ratio": window(cpu, last) / window(cpu, 10),
        "micro_batches": last,
        "commit_10_ms": window(commits, 10) * 1000,
        "commit_last_ms": window(commits, last) * 1000,
        "flush_10_ms": window(flush, 10) * 1000,
        "flush_last_ms": window(flush, last) * 1000,
        "slowest_commit_ms": max(commits) * 1000,
        "commits_over_250_ms": sum(1 for c in commits if c > 0.25),
        "ratio": window(commits, last) / window(commits, 10),
    }


# -- replay ---------------------------------------------------------------------------


def part_replay(args: argparse.Namespace) -> dict[str, Any]:
    from catalog import open_catalog
    from lakehouse.tables import ensure_tables
    from writers import ingest

    rng = np.random.default_rng(11)
    runs = max(1, args.replay_runs)
    with fresh_home("bench-history-replay-") as settings:
        landing = Path(settings.home) / "landing"
        ensure_tables(open_catalog(settings), settings.table)  # `lakehouse init`, not timed
        events = late_files = landed = 0
        t_ingest = 0.0
        written = 0
        for run in range(runs):
            # The files that arrived since the previous ingest run (a scheduled ingest
            # picks them up): in arrival order, ~10 events each; a quarter of them from
            # devices that were offline, their events up to 3 days older.
            upto = (run + 1) * args.replay_files // runs
            for i in range(written, upto):
                hour = int(i * args.replay_hours / args.replay_files)
                offline = rng.random() < 0.25
                late_files += offline
                n = int(rng.integers(5, 16))
                at = BASE + timedelta(hours=hour)
                lines = []
                for j in range(n):
                    back = int(rng.integers(0, 72 * 3600)) if offline else 0
                    ts = at + timedelta(seconds=int(rng.integers(0, 5400)) - back)
                    lines.append(
                        json.dumps(
                            {
                                "event_id": f"r-{i}-{j}",
                                "user_id": f"u{int(rng.integers(0, 500))}",
                                "event_type": "view",
                                "client_ts": ts.isoformat(),  # no server time: received now
                            }
                        )
                    )
                path = landing / f"{at:%Y/%m/%d/%H}" / f"part-{i:05d}.ndjson"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text("\n".join(lines) + "\n")
                events += n
            written = upto
            start = time.perf_counter()
            result = ingest([str(landing)], settings)
            t_ingest += time.perf_counter() - start
            landed += result.records_written
        assert landed == events, (landed, events)
        table = open_catalog(settings).load_table(settings.table.identifier)
        before_files = int(table.current_snapshot().summary["total-data-files"])
        print(
            f"  replay: {events:,} events in {before_files:,} data files, ingested in {runs} runs"
            f" taking {t_ingest:.1f} s",
            file=sys.stderr,
        )
        before = last_sequence_number(settings)
        t_maintain, summary = maintain_run(settings.home)
        added = snapshots_since(settings, before)
    return {
        "files": args.replay_files,
        "hours": args.replay_hours,
        "ingest_runs": runs,
        "late_files": late_files,
        "events": events,
        "data_files_before": before_files,
        "ingest_s": round(t_ingest, 2),
        "maintain_s": round(t_maintain, 2),
        "snapshots_added": added,
        "result": {k: v for k, v in summary.items() if isinstance(v, int | float)},
        "ratio": t_maintain / t_ingest,
    }


PARTS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "maintain": part_maintain,
    "s3": part_s3,
    "latency": part_latency,
    "replay": part_replay,
}


def _child(name: str, args: argparse.Namespace, queue: Any) -> None:
    try:
        queue.put(PARTS[name](args))
    except BaseException as exc:  # reported by the parent
        queue.put({"error": f"{type(exc).__name__}: {exc}"})
        raise


def run_part(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """One part in a fresh process (its caches, memory and garbage are its own)."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(name, args, queue))
    proc.start()
    out = queue.get()
    proc.join()
    return out  # type: ignore[no-any-return]


def report(name: str, r: dict[str, Any]) -> None:
    if "error" in r:
        print(f"{name}: FAILED {r['error']}")
        return
    if name == "maintain":
        kept = "kept" if r["old_snapshots_kept"] else "expired, as retention would have"
        print(
            f"maintain run, {r['days']} days of hours, last {RECENT_DAYS} days with late data"
            f" (old days' snapshots {kept})"
        )
        print(
            f"  on the {r['days']}-day table      {r['history_maintain_s']:>9.2f} s   ({r['history_snapshots_added']} snapshots added)"
        )
        print(
            f"  same files in 24 hours     {r['24h_maintain_s']:>9.2f} s   ({r['24h_snapshots_added']} snapshots added)"
        )
        print(f"  ratio                      {r['ratio']:>9.2f}     (target <= 2.0)")
        print(f"  snapshots added by one run {r['history_snapshots_added']:>9}     (target <= 12)")
    elif name == "s3":
        print(f"S3 ingest (moto server), 1 new object over {r['objects']:,} ingested")
        print(
            f"  into the big zone          {r['incremental_s']:>9.2f} s   ({r['incremental_lists']} LIST, {r['incremental_requests']} requests)"
        )
        print(
            f"  into a fresh zone          {r['fresh_s']:>9.2f} s   ({r['fresh_lists']} LIST, {r['fresh_requests']} requests)"
        )
        print(f"  ratio                      {r['ratio']:>9.2f}     (target <= 1.5)")
        print(
            f"  CPU time of this process   big zone {r['incremental_cpu_s']:.3f} s, fresh"
            f" {r['fresh_cpu_s']:.3f} s: ratio {r['cpu_ratio']:.2f} (robust to a busy machine)"
        )
    elif name == "latency":
        print(f"micro-batch commits of 100 events, default retention: {r['micro_batches']:,}")
        print(
            f"  commit #10                 {r['commit_10_ms']:>9.1f} ms  (whole flush {r['flush_10_ms']:.1f} ms)"
        )
        print(
            f"  commit #{r['micro_batches']:<18} {r['commit_last_ms']:>9.1f} ms  (whole flush {r['flush_last_ms']:.1f} ms)"
        )
        print(
            f"  slowest commit             {r['slowest_commit_ms']:>9.1f} ms  ({r['commits_over_250_ms']} over 250 ms)"
        )
        print(f"  ratio                      {r['ratio']:>9.2f}     (target <= 2.0)")
        print(
            f"  CPU time of a commit       #10 {r['cpu_10_ms']:.1f} ms, last {r['cpu_last_ms']:.1f} ms:"
            f" ratio {r['cpu_ratio']:.2f} (robust to a busy machine)"
        )
    elif name == "replay":
        print(
            f"replay: {r['files']:,} landing files over {r['hours']:,} hours ({r['events']:,} events,"
            f" {r['late_files']:,} files from offline devices), {r['ingest_runs']} ingest runs"
        )
        print(
            f"  ingest (all runs)          {r['ingest_s']:>9.2f} s   ({r['data_files_before']:,} data files)"
        )
        print(
            f"  maintain run               {r['maintain_s']:>9.2f} s   ({r['snapshots_added']} snapshots added)"
        )
        groups = r["result"].get("groups_committed", "?")
        print(f"  groups compacted           {groups:>9}")
        print(f"  ratio                      {r['ratio']:>9.2f}     (target <= 3.0)")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="a scaled-down run (minutes, not an hour)"
    )
    parser.add_argument(
        "--only", choices=sorted(PARTS), action="append", help="run only this part (repeatable)"
    )
    parser.add_argument("--days", type=int, default=90, help="days of hour partitions [90]")
    parser.add_argument(
        "--per-hour", type=int, default=4, help="on-time micro-batches per recent hour [4; quick 2]"
    )
    parser.add_argument(
        "--late-batches",
        type=int,
        default=24,
        help="late batches over the recent hours [24; quick 8]",
    )
    parser.add_argument(
        "--batch-events", type=int, default=400, help="events per micro-batch [400]"
    )
    parser.add_argument(
        "--objects",
        type=int,
        default=None,
        help="ingested objects in the S3 zone [20,000; quick 2,000]",
    )
    parser.add_argument(
        "--micro-batches", type=int, default=None, help="micro-batch commits [7,200; quick 1,000]"
    )
    parser.add_argument(
        "--replay-files",
        type=int,
        default=None,
        help="landing files of the replay [3,000; quick 300]",
    )
    parser.add_argument(
        "--replay-hours", type=int, default=None, help="hours the replay spans [1,900; quick 190]"
    )
    parser.add_argument(
        "--keep-old-snapshots",
        action="store_true",
        help="maintain part: keep the snapshots of the 87 old days (by default they are"
        " expired before the recent days, as the 5-day retention would have done)",
    )
    parser.add_argument(
        "--replay-runs",
        type=int,
        default=None,
        help="ingest runs the replay's files arrive over [30; quick 10]",
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="measurements of the S3 ingests (median) [3]"
    )
    parser.add_argument(
        "--json", action="store_true", help="also print each part's figures as a JSON line"
    )
    args = parser.parse_args()
    quick = args.quick
    if quick:
        args.per_hour = min(args.per_hour, 2)
        args.late_batches = min(args.late_batches, 8)
    args.objects = args.objects or (2_000 if quick else 20_000)
    args.micro_batches = args.micro_batches or (1_000 if quick else 7_200)
    args.replay_files = args.replay_files or (300 if quick else 3_000)
    args.replay_hours = args.replay_hours or (190 if quick else 1_900)
    args.replay_runs = args.replay_runs or (10 if quick else 30)
    load = os.getloadavg()
    print(
        f"{os.cpu_count()} cores, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}{' (quick)' if quick else ''}"
    )
    for name in args.only or list(PARTS):
        started = time.perf_counter()
        result = run_part(name, args)
        report(name, result)
        print(f"  ({time.perf_counter() - started:.0f} s with set-up)")
        if args.json:
            print(json.dumps({"part": name, **result}, default=str))


if __name__ == "__main__":
    main()
