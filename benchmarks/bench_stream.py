"""Stream ingest throughput: events/s from a local Kinesis stream (moto's server on
127.0.0.1) into the table, against the same events through the landing path, as a ratio.

    python benchmarks/bench_stream.py [--events 20000] [--per-record 1] [--shards 2]

The same events are put into a fresh stream (records of ``--per-record`` NDJSON lines,
gzipped when more than one) and written as gzip NDJSON landing files of 10,000 events;
each path ingests them into a fresh table (one run, without ``--follow``). Also timed:
reading the stream alone (GetRecords until every shard is at its tip, nothing written),
which is the emulator's share of the stream figure. Putting the records is not timed; a
small landing ingest runs first so neither path pays for first imports.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import fresh_home, synthetic_events
from lakehouse.tables import open_tables
from writers import EventWriter
from writers.ingest import ingest, ingest_source
from writers.sources.kinesis import KinesisStream
from writers.sources.kinesis_client import StreamClient

KEY, SECRET, REGION = "bench", "bench-secret", "us-east-1"


def ndjson_lines(n: int) -> list[bytes]:
    table = synthetic_events(n)
    out = []
    for row in table.to_pylist():
        for k in ("client_ts", "server_ts"):
            row[k] = row[k].isoformat().replace("+00:00", "Z")
        out.append(json.dumps(row, separators=(",", ":")).encode())
    return out


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise SystemExit("moto did not start") from None
            time.sleep(0.2)


def client(endpoint: str) -> object:
    import boto3

    return boto3.client(
        "kinesis",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=KEY,
        aws_secret_access_key=SECRET,
    )


def put(kinesis: object, stream: str, lines: list[bytes], per_record: int, shards: int) -> int:
    kinesis.create_stream(StreamName=stream, ShardCount=shards)  # type: ignore[attr-defined]
    records = []
    for k in range(0, len(lines), per_record):
        data = b"\n".join(lines[k : k + per_record]) + b"\n"
        records.append(gzip.compress(data, 1) if per_record > 1 else data)
    for k in range(0, len(records), 500):
        kinesis.put_records(  # type: ignore[attr-defined]
            StreamName=stream,
            Records=[
                {"Data": d, "PartitionKey": f"p{k + i}"} for i, d in enumerate(records[k : k + 500])
            ],
        )
    return len(records)


def stream_ingest(kinesis: object, stream: str) -> tuple[float, int]:
    with fresh_home("bench-stream-") as settings:
        tables = open_tables(settings, create=True)
        writer = EventWriter(
            settings, tables=tables, max_records=1 << 62, max_bytes=1 << 62, max_age=1e12
        )
        source = KinesisStream(stream, StreamClient(kinesis, stream))
        start = time.perf_counter()
        result = ingest_source(source, writer=writer)
        return time.perf_counter() - start, result.records_written


def stream_read_only(kinesis: object, stream: str) -> float:
    calls = StreamClient(kinesis, stream)
    start = time.perf_counter()
    for shard in calls.shards():
        iterator: str | None = calls.iterator(shard.id)
        while iterator:
            read = calls.read(iterator, 10_000)
            if not read.records:
                break
            iterator = read.next_iterator
    return time.perf_counter() - start


def landing_ingest(lines: list[bytes]) -> tuple[float, int]:
    with tempfile.TemporaryDirectory(prefix="bench-landing-") as zone, fresh_home() as settings:
        for k in range(0, len(lines), 10_000):
            path = Path(zone) / f"part-{k // 10_000:05d}.ndjson.gz"
            path.write_bytes(gzip.compress(b"\n".join(lines[k : k + 10_000]) + b"\n", 1))
        open_tables(settings, create=True)
        start = time.perf_counter()
        result = ingest([zone], settings)
        return time.perf_counter() - start, result.records_written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--per-record", type=int, default=1, help="events per Kinesis record")
    parser.add_argument("--shards", type=int, default=2)
    args = parser.parse_args()
    os.environ.update(AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY=SECRET, AWS_REGION=REGION)
    lines = ndjson_lines(args.events)
    landing_ingest(lines[:200])  # warm-up: both paths then run with every module imported
    proc, endpoint = start_moto()
    try:
        kinesis = client(endpoint)
        records = put(kinesis, "bench", lines, args.per_record, args.shards)
        read_s = stream_read_only(kinesis, "bench")
        stream_s, stream_n = stream_ingest(kinesis, "bench")
    finally:
        proc.terminate()
        proc.wait()
    landing_s, landing_n = landing_ingest(lines)
    assert stream_n == landing_n == args.events, (stream_n, landing_n)
    stream_rate, landing_rate = args.events / stream_s, args.events / landing_s
    print(
        f"events: {args.events:,} in {records:,} records of {args.per_record} over {args.shards} shards"
    )
    print(
        f"stream read only (moto GetRecords): {read_s:6.2f} s  {args.events / read_s:12,.0f} ev/s"
    )
    print(f"stream ingest  kinesis://         : {stream_s:6.2f} s  {stream_rate:12,.0f} ev/s")
    print(f"landing ingest gzip NDJSON files  : {landing_s:6.2f} s  {landing_rate:12,.0f} ev/s")
    print(f"ratio stream / landing            : {stream_rate / landing_rate:.2f}x")
    print(f"stream reads / stream ingest time : {read_s / stream_s:.2f} (the emulator's share)")


if __name__ == "__main__":
    main()
