"""``lakehouse sql`` over a table whose warehouse is on S3 (the moto server behind a
counting proxy): the results equal pyiceberg's own read of the snapshot, the objects are
scanned as the query runs (not fetched whole first), and a time filter written in the
query on ``events`` fetches only the data objects whose ``client_ts`` bounds meet it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.compute as pc
import pytest

import lakehouse
from catalog import open_catalog
from lakehouse.settings import Settings
from lakehouse.tables import load_tables
from tests.aws.test_s3 import s3_catalog_env
from tests.support.faults import FaultPlan, fault_proxy
from tests.support.moto import MotoServer
from tests.writers.events import event
from writers import EventWriter

pytestmark = pytest.mark.aws

HOUR = (datetime(2024, 5, 1, 5, tzinfo=UTC), datetime(2024, 5, 1, 6, tzinfo=UTC))


@pytest.fixture
def fetched() -> list[str]:
    return []


@pytest.fixture
def s3_lake(
    moto_server: MotoServer,
    bucket: str,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    fetched: list[str],
) -> Iterator[Settings]:
    """60 events over 20 hours (one data file per hour) in an S3 warehouse; every GET of a
    data object through the proxy is noted in ``fetched``."""

    def note(method: str, path: str, n: int) -> None:
        if method == "GET" and path.split("?")[0].endswith(".parquet"):
            fetched.append(path.split("?")[0])

    with fault_proxy(moto_server.endpoint, FaultPlan(rule=note)) as endpoint:
        props = {
            **moto_server.s3_properties(),
            "s3.endpoint": endpoint,
            "warehouse": f"s3://{bucket}/warehouse",
        }
        s3_catalog_env(monkeypatch, "lakehouse", props)
        settings = Settings.from_env()
        with EventWriter(settings) as writer:
            writer.write([event(i, minutes=i * 20) for i in range(60)])
        fetched.clear()
        yield settings


def test_sql_over_s3_equals_pyiceberg_and_prunes_from_where(
    s3_lake: Settings, fetched: list[str]
) -> None:
    events = load_tables(open_catalog(s3_lake), s3_lake.table).events
    oracle = events.scan().to_arrow()  # pyiceberg's own read of the snapshot
    files = {t.file.file_path for t in events.scan().plan_files()}
    assert len(files) == 20

    got = lakehouse.sql(
        "SELECT event_id, user_id, client_ts FROM events ORDER BY event_id", s3_lake
    ).to_dicts()
    assert [r["event_id"] for r in got] == sorted(oracle.column("event_id").to_pylist())
    by_id = {r["event_id"]: r for r in oracle.select(["event_id", "user_id"]).to_pylist()}
    assert all(by_id[r["event_id"]]["user_id"] == r["user_id"] for r in got)
    assert {p.rsplit("/", 1)[-1] for p in fetched} == {f.rsplit("/", 1)[-1] for f in files}

    fetched.clear()
    hour = lakehouse.sql(
        "SELECT event_id FROM events WHERE client_ts >= TIMESTAMP '2024-05-01 05:00:00' "
        "AND client_ts < TIMESTAMP '2024-05-01 06:00:00' ORDER BY event_id",
        s3_lake,
    ).to_dicts()
    ts = oracle.column("client_ts")
    in_hour = pc.and_(pc.greater_equal(ts, HOUR[0]), pc.less(ts, HOUR[1]))
    expected = sorted(oracle.filter(in_hour).column("event_id").to_pylist())
    assert [r["event_id"] for r in hour] == expected and len(expected) == 3
    assert len({p.rsplit("/", 1)[-1] for p in fetched}) == 1, fetched
