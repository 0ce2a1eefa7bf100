"""Trino 476 reading the Glue catalog on the moto server (S3 + Glue on 127.0.0.1): tables
registered and written by our writers (Glue catalog, S3 warehouse) are read by Trino
through ``iceberg.catalog.type=glue`` and its native S3 file system — rows, values, the
``events_ordered`` view and a column added by schema evolution."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import pytest
from click.testing import CliRunner

from catalog import open_catalog
from lakehouse.cli.main import cli
from lakehouse.read import with_order
from lakehouse.settings import Settings
from lakehouse.trino_server import query
from tests.aws.conftest import GlueLake
from tests.support.moto import SECRET_KEY
from writers import EventWriter

pytestmark = [pytest.mark.aws, pytest.mark.trino]

TABLE = "glue_reads.events"
T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
TYPES = ("view", "click", "it's ok", "purchase")


def batch(number: int, count: int = 50) -> list[dict[str, Any]]:
    """Events over 08:00-11:59 for 13 users, with ties in client_ts (broken by event_id)
    and events 0.2 ms apart across a millisecond boundary."""
    rows: list[dict[str, Any]] = []
    for i in range(count):
        n = number * count + i
        ts = T0 + timedelta(seconds=(n * 211) % (4 * 3600), microseconds=(n * 7919) % 1000)
        user = f"u{n % 13}"
        if n % 17 == 0:
            ts = ts.replace(microsecond=999_900)
        if rows and n % 17 == 1:
            ts, user = rows[-1]["client_ts"] + timedelta(microseconds=200), rows[-1]["user_id"]
        if rows and n % 23 == 5:
            ts, user = rows[-1]["client_ts"], rows[-1]["user_id"]  # a tie
        rows.append(
            {
                "event_id": f"e{n:05d}",
                "user_id": user,
                "event_type": TYPES[(n * 5 + n // 7) % len(TYPES)],
                "client_ts": ts,
                "server_ts": ts + timedelta(seconds=3),
                "properties": {"n": n},
            }
        )
    return rows


def sql(lake: GlueLake, text: str, settings: Settings) -> list[tuple[Any, ...]]:
    return list(query(text, settings=settings, port=lake.port).rows)


def ordered_rows(settings: Settings) -> pl.LazyFrame:
    """The read API's ordered view (``with_order``) over pyiceberg's scan of the table.
    (``lakehouse.read.ordered`` scans with Polars' own S3 reader, which does not take the
    catalog's ``s3.endpoint``: it cannot reach the emulator.)"""
    table = open_catalog(settings).load_table(settings.table.identifier)
    return with_order(pl.DataFrame(table.scan().to_arrow()).lazy())


def run_cli(*args: str) -> Any:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout) if "--json" in args else result.stdout


@pytest.fixture(scope="module")
def written(glue_lake: GlueLake) -> Settings:
    """``lakehouse init --catalog glue`` then three commits by the writer (150 events)."""
    settings = glue_lake.settings(TABLE)
    with glue_lake.env_context():
        out = run_cli(
            "init", "--home", str(settings.home), "--catalog", "glue", "--table", TABLE, "--json"
        )
        assert out["location"].startswith(f"s3://{glue_lake.bucket}/warehouse")
        received = T0 + timedelta(days=2)
        with EventWriter(settings, clock=lambda: received) as writer:
            for number in range(3):
                writer.write(batch(number))
                writer.flush()
    return settings


def test_the_table_is_registered_in_glue_for_trino(written: Settings, glue_trino: GlueLake) -> None:
    entry = glue_trino.moto.client("glue").get_table(DatabaseName="glue_reads", Name="events")
    params = entry["Table"]["Parameters"]
    table = open_catalog(written).load_table(written.table.identifier)
    assert params["table_type"] == "ICEBERG"
    assert params["metadata_location"] == table.metadata_location


def test_trino_reads_the_same_rows_and_values(written: Settings, glue_trino: GlueLake) -> None:
    table = open_catalog(written).load_table(written.table.identifier)
    want = pl.DataFrame(table.scan().to_arrow()).sort("event_id")
    assert want.height == 150
    rows = sql(
        glue_trino,
        "SELECT event_id, user_id, event_type, client_ts, server_ts, properties "
        "FROM events ORDER BY event_id",
        written,
    )
    assert len(rows) == 150
    assert [r[0] for r in rows] == want["event_id"].to_list()
    assert [r[1] for r in rows] == want["user_id"].to_list()
    assert [r[2] for r in rows] == want["event_type"].to_list()
    assert [r[3] for r in rows] == want["client_ts"].to_list()  # to the microsecond, UTC
    assert [r[4] for r in rows] == want["server_ts"].to_list()
    assert [json.loads(r[5]) for r in rows] == [json.loads(p) for p in want["properties"]]
    hours = sql(
        glue_trino,
        "SELECT date_trunc('hour', client_ts) AS h, count(*) FROM events GROUP BY 1 ORDER BY 1",
        written,
    )
    polars_hours = (
        want.group_by(pl.col("client_ts").dt.truncate("1h")).len().sort("client_ts").rows()
    )
    assert [(h, n) for h, n in hours] == [(h, n) for h, n in polars_hours]
    assert len(hours) == 4
    # Trino reads the table's files on S3 (the moto bucket), through Glue's metadata location
    [(files,)] = sql(glue_trino, 'SELECT count(*) FROM "events$files"', written)
    assert files == len(list(table.scan().plan_files())) >= 4


def test_the_ordered_view_equals_the_read_api(written: Settings, glue_trino: GlueLake) -> None:
    args = ["--home", str(written.home), "--catalog", "glue", "--table", TABLE]
    out = run_cli("trino", "views", *args, "--port", str(glue_trino.port), "--json")
    assert out["views"][0]["view"] == "lakehouse.glue_reads.events_ordered"
    glue = glue_trino.moto.client("glue")
    view = glue.get_table(DatabaseName="glue_reads", Name="events_ordered")["Table"]
    assert view["TableType"] == "VIRTUAL_VIEW"  # stored in Glue, where Trino keeps views
    got = sql(
        glue_trino,
        "SELECT user_id, event_seq, event_id, event_type, client_ts, prev_event_type, "
        "millis_since_prev FROM events_ordered ORDER BY user_id, event_seq",
        written,
    )
    want = (
        ordered_rows(written)
        .select(
            "user_id",
            "event_seq",
            "event_id",
            "event_type",
            "client_ts",
            "prev_event_type",
            "millis_since_prev",
        )
        .collect()
    )
    assert len(got) == want.height == 150
    assert [tuple(r) for r in got] == want.rows()  # same order per user, ties by event_id
    assert {r[6] for r in got} >= {0, 1}  # a tie and a 0.2 ms step across a millisecond


def test_a_column_added_by_the_writer_is_visible_in_trino(
    written: Settings, glue_trino: GlueLake
) -> None:
    base = datetime(2026, 3, 1, 13, 0, tzinfo=UTC)
    new = [
        {
            "event_id": f"p{i:03d}",
            "user_id": f"u{i % 13}",
            "event_type": "view",
            "client_ts": base + timedelta(minutes=i),
            "server_ts": base + timedelta(minutes=i, seconds=1),
            "platform": ("ios", "android")[i % 2],
            "score": i / 4,
        }
        for i in range(10)
    ]
    with EventWriter(written, clock=lambda: base + timedelta(days=1)) as writer:
        writer.write(new)
    # Glue now points at the new metadata (with the columns); Trino reads it on the next query
    rows = sql(
        glue_trino,
        "SELECT event_id, platform, score FROM events WHERE platform IS NOT NULL ORDER BY 1",
        written,
    )
    assert rows == [(e["event_id"], e["platform"], e["score"]) for e in new]
    [(total, without)] = sql(
        glue_trino, "SELECT count(*), count_if(platform IS NULL) FROM events", written
    )
    assert (total, without) == (160, 150)
    # the view keeps its columns until `trino views` runs again, which brings them in
    [(n,)] = sql(glue_trino, "SELECT count(*) FROM events_ordered", written)
    assert n == 160
    args = ["--home", str(written.home), "--catalog", "glue", "--table", TABLE]
    out = run_cli("trino", "views", *args, "--port", str(glue_trino.port), "--json")
    assert {"platform", "score"} <= set(out["views"][0]["columns_added"])
    seen = sql(
        glue_trino,
        "SELECT event_id, platform, event_seq FROM events_ordered WHERE platform = 'ios' "
        "ORDER BY event_id",
        written,
    )
    want = ordered_rows(written).filter(pl.col("platform") == "ios").sort("event_id")
    assert seen == want.select("event_id", "platform", "event_seq").collect().rows()


def test_the_catalog_file_is_private_and_the_logs_hold_no_secret(glue_trino: GlueLake) -> None:
    paths = glue_trino.paths()
    catalog_file = paths.catalog_dir / "lakehouse.properties"
    text = catalog_file.read_text()
    assert "iceberg.catalog.type=glue" in text
    assert f"hive.metastore.glue.endpoint-url={glue_trino.moto.endpoint}" in text
    assert stat.S_IMODE(catalog_file.stat().st_mode) == 0o600
    for log_file in (paths.server_log, paths.launcher_log):
        if log_file.exists():
            assert SECRET_KEY not in log_file.read_text(errors="replace"), log_file
    state = (paths.state_file).read_text()
    assert SECRET_KEY not in state
