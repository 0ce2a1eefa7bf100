"""Incremental landing ingest on S3 (the moto server): one new object over a zone of many
ingested ones, against the same ingest into a fresh zone, measured in one run.

    python benchmarks/bench_landing.py                   # 4,000 ingested objects
    python benchmarks/bench_landing.py --objects 20000   # the issue's size (slow to build)

Builds a Firehose-layout zone (``YYYY/MM/DD/HH/<stream>-1-<time>-<uuid>``, one object a
minute) on a moto server, ingests it, adds one object, and times that run; then times
the ingest of one object into a fresh zone and table. Counts the LIST requests of each
run (a boto3 event hook). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lakehouse.settings import Settings
from tests.support.moto import MotoServer, running_moto
from tests.writers.events import event
from tests.writers.landing_zone import FIREHOSE_TIME, firehose_key, lines
from writers import ingest
from writers.sources import listing

LISTS: list[int] = [0]


def _count_lists() -> None:
    real = listing.s3_client

    def counted(io: Any = None) -> Any:
        client = real(io)

        def hook(**_: Any) -> None:
            LISTS[0] += 1

        client.meta.events.register("provide-client-params.s3.ListObjectsV2", hook)
        return client

    listing.s3_client = counted  # type: ignore[assignment]


def _settings(server: MotoServer, warehouse: str, home: str) -> Settings:
    props = {**server.s3_properties(), "warehouse": f"s3://{warehouse}/w"}
    for key, value in props.items():
        name = key.replace(".", "__").replace("-", "_").upper()
        os.environ[f"PYICEBERG_CATALOG__LAKEHOUSE__{name}"] = value
    os.environ["LAKEHOUSE_HOME"] = home
    return Settings.from_env()


def _timed(zone: str, settings: Settings) -> tuple[float, int, int]:
    LISTS[0] = 0
    started = time.perf_counter()
    result = ingest([zone], settings)
    return time.perf_counter() - started, result.files, LISTS[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--objects", type=int, default=4000, help="objects ingested first")
    args = parser.parse_args()
    _count_lists()
    n = args.objects
    with running_moto() as server:
        s3 = server.client("s3")
        for bucket in ("zone", "wh-big", "wh-fresh"):
            s3.create_bucket(Bucket=bucket)

        def put(k: int) -> None:
            at = FIREHOSE_TIME - timedelta(minutes=n - k)
            key = "big/" + firehose_key(at, k, False)
            s3.put_object(Bucket="zone", Key=key, Body=lines([event(k)]))

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(put, range(n)))
        home = tempfile.mkdtemp(prefix="bench-landing-")
        big = _settings(server, "wh-big", f"{home}/big")
        initial, files, lists = _timed("s3://zone/big/", big)
        new_key = "big/" + firehose_key(FIREHOSE_TIME + timedelta(minutes=1), n + 1, False)
        s3.put_object(Bucket="zone", Key=new_key, Body=lines([event(n + 1)]))
        incremental, inc_files, inc_lists = _timed(
            "s3://zone/big/", _settings(server, "wh-big", f"{home}/big")
        )
        s3.put_object(
            Bucket="zone",
            Key="small/" + firehose_key(FIREHOSE_TIME, 1, False),
            Body=lines([event(0)]),
        )
        fresh_settings = _settings(server, "wh-fresh", f"{home}/fresh")
        from catalog import open_catalog
        from lakehouse.tables import ensure_tables

        ensure_tables(open_catalog(fresh_settings), fresh_settings.table)
        fresh, fresh_files, fresh_lists = _timed("s3://zone/small/", fresh_settings)
    print(
        json.dumps(
            {
                "objects": n,
                "initial_ingest_s": round(initial, 2),
                "initial_files": files,
                "initial_list_requests": lists,
                "incremental_s": round(incremental, 3),
                "incremental_files": inc_files,
                "incremental_list_requests": inc_lists,
                "fresh_s": round(fresh, 3),
                "fresh_files": fresh_files,
                "fresh_list_requests": fresh_lists,
                "ratio": round(incremental / fresh, 2),
                "load": os.getloadavg(),
            }
        )
    )


if __name__ == "__main__":
    main()
