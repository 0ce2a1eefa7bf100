"""What an incremental ingest reads on S3 (the moto server), from a cold process: each
manifest list and manifest once, each ledger file that can hold a listed key once, and no
events data file when the new events' ids lie outside every committed file's bounds."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pyiceberg.io.pyarrow import PyArrowFile

from catalog import open_catalog
from catalog.files import FILE_CACHE
from catalog.metadata import METADATA_CACHE
from lakehouse.settings import Settings
from lakehouse.tables import load_tables
from tests.aws.test_s3 import s3_catalog_env
from tests.support.moto import MotoServer
from tests.writers.events import event, rows
from tests.writers.landing_zone import FIREHOSE_TIME, firehose_key, lines
from writers import ingest

pytestmark = pytest.mark.aws


@pytest.fixture
def s3_lake(
    moto_server: MotoServer, bucket: str, home: Path, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    props = {**moto_server.s3_properties(), "warehouse": f"s3://{bucket}/warehouse"}
    s3_catalog_env(monkeypatch, "lakehouse", props)
    return Settings.from_env()


def test_an_incremental_run_reads_each_file_once_and_no_events_file(
    s3_lake: Settings, moto_server: MotoServer, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3 = moto_server.client("s3")
    zone = f"s3://{bucket}/fh/"
    n = 0
    for run in range(3):  # three runs: three ledger files, three manifests per table
        for _k in range(8):
            at = FIREHOSE_TIME - timedelta(hours=2) + timedelta(minutes=10 * n)
            body = lines([event(n * 3 + i, minutes=n) for i in range(3)])
            s3.put_object(Bucket=bucket, Key="fh/" + firehose_key(at, n, False), Body=body)
            n += 1
        assert ingest([zone], s3_lake).files == 8, run

    opened: Counter[str] = Counter()
    real = PyArrowFile.open

    def counted(self: PyArrowFile, seekable: bool = True) -> Any:
        opened[self.location] += 1
        return real(self, seekable)

    monkeypatch.setattr(PyArrowFile, "open", counted)
    new = [event(90_000 + i, minutes=n) for i in range(3)]  # ids after every committed one
    at = FIREHOSE_TIME - timedelta(hours=2) + timedelta(minutes=10 * n)
    s3.put_object(Bucket=bucket, Key="fh/" + firehose_key(at, n, False), Body=lines(new))
    FILE_CACHE.clear()  # as a new process
    METADATA_CACHE.clear()
    result = ingest([zone], s3_lake)
    assert result.files == 1 and result.records_written == 3 and result.duplicates_dropped == 0

    avro = {loc: c for loc, c in opened.items() if loc.endswith(".avro")}
    assert avro and set(avro.values()) == {1}, avro  # each manifest list and manifest once
    ledger_files = [loc for loc in opened if "_ingested/data/" in loc]
    assert ledger_files and all(opened[loc] == 1 for loc in ledger_files)
    events_files = [loc for loc in opened if "/events/data/" in loc]
    assert events_files == []  # dedupe: the bounds prove no committed file holds a new id
    tables = load_tables(open_catalog(s3_lake), s3_lake.table)
    ids = rows(tables.events).column("event_id").to_pylist()
    expected = {f"e{i:06d}" for i in range(n * 3)} | {e["event_id"] for e in new}
    assert len(ids) == len(set(ids)) and set(ids) == expected
