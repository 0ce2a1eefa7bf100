"""The writers, ingest and health on an S3 warehouse and an S3 landing zone, against the
moto server: with the embedded SQLite catalog and with the Glue catalog."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from catalog import open_catalog
from lakehouse.settings import Settings
from lakehouse.tables import ensure_tables, load_tables
from tests.support.moto import MotoServer
from tests.writers.events import event, rows
from writers import EventWriter, ingest

pytestmark = pytest.mark.aws


def s3_catalog_env(monkeypatch: pytest.MonkeyPatch, name: str, props: dict[str, str]) -> None:
    for key, value in props.items():
        env_key = key.replace(".", "__").replace("-", "_").upper()
        monkeypatch.setenv(f"PYICEBERG_CATALOG__{name.upper()}__{env_key}", value)


@pytest.fixture(params=["sqlite", "glue"])
def s3_settings(
    request: pytest.FixtureRequest,
    moto_server: MotoServer,
    bucket: str,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Settings:
    """An S3 warehouse with the embedded SQLite catalog, then with the Glue catalog."""
    props = {**moto_server.s3_properties(), "warehouse": f"s3://{bucket}/warehouse"}
    if request.param == "glue":
        s3_catalog_env(
            monkeypatch, "glue", {"type": "glue", **props, **moto_server.glue_properties()}
        )
        return Settings.from_env(catalog="glue", table=f"ns_{bucket.replace('-', '_')}.events")
    s3_catalog_env(monkeypatch, "lakehouse", props)
    return Settings.from_env()


def put_landing(server: MotoServer, bucket: str, files: int = 4, per_file: int = 40) -> list[str]:
    s3 = server.client("s3")
    keys = []
    for f in range(files):
        batch = [event(f * per_file + i) for i in range(per_file)]
        if f:
            batch.append(event((f - 1) * per_file))  # a resend
        body = ("\n".join(json.dumps(e) for e in batch) + "\n").encode()
        key = f"landing/2024/05/01/{f:02d}/part-{f}.ndjson" + (".gz" if f % 2 else "")
        s3.put_object(Bucket=bucket, Key=key, Body=gzip.compress(body) if f % 2 else body)
        keys.append(key)
    s3.put_object(Bucket=bucket, Key="landing/_SUCCESS", Body=b"")
    return keys


def test_writer_puts_data_and_metadata_on_s3(
    s3_settings: Settings, moto_server: MotoServer, bucket: str
) -> None:
    with EventWriter(s3_settings) as writer:
        writer.write([event(i, minutes=i * 20) for i in range(60)])
    tables = load_tables(open_catalog(s3_settings), s3_settings.table)
    assert tables.events.location().startswith(f"s3://{bucket}/warehouse")
    data = rows(tables.events)
    assert sorted(data.column("event_id").to_pylist()) == [f"e{i:06d}" for i in range(60)]
    listed = moto_server.client("s3").list_objects_v2(Bucket=bucket, Prefix="warehouse/")
    keys = [o["Key"] for o in listed.get("Contents", [])]
    assert sum(k.endswith(".parquet") for k in keys) == 20  # one file per hour
    assert any(k.endswith(".metadata.json") for k in keys)


def test_ingest_from_an_s3_landing_prefix_is_exactly_once(
    s3_settings: Settings, moto_server: MotoServer, bucket: str
) -> None:
    keys = put_landing(moto_server, bucket)
    first = ingest([f"s3://{bucket}/landing/"], s3_settings, max_group_files=3)
    assert (first.files, first.commits, first.records_written, first.duplicates_dropped) == (
        4,
        2,
        160,
        3,
    )
    again = ingest([f"s3://{bucket}/landing"], s3_settings, look_back=None)  # full listing
    assert (again.files, again.files_skipped, again.records_read) == (0, 4, 0)
    listed = ingest([f"s3://{bucket}/landing"], s3_settings)  # from 2 h before the last hour
    assert (listed.files, listed.files_skipped, listed.records_read) == (0, 3, 0)
    tables = load_tables(open_catalog(s3_settings), s3_settings.table)
    ids = rows(tables.events).column("event_id").to_pylist()
    assert len(ids) == len(set(ids)) == 160
    logged = sorted(rows(tables.ingested).column("source").to_pylist())
    assert logged == sorted(f"s3://{bucket}/{k}" for k in keys)  # _SUCCESS is a marker, not data


def test_glue_registration_follows_schema_evolution(
    moto_server: MotoServer, bucket: str, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    props = {
        "type": "glue",
        **moto_server.s3_properties(),
        **moto_server.glue_properties(),
        "warehouse": f"s3://{bucket}/warehouse",
    }
    s3_catalog_env(monkeypatch, "glue", props)
    settings = Settings.from_env(catalog="glue", table="athena_db.events")
    tables, created = ensure_tables(open_catalog(settings), settings.table)
    assert "athena_db.events" in created
    glue = moto_server.client("glue")
    entry = glue.get_table(DatabaseName="athena_db", Name="events")["Table"]
    assert entry["Parameters"]["table_type"] == "ICEBERG"
    assert entry["Parameters"]["metadata_location"] == tables.events.metadata_location
    assert [c["Name"] for c in entry["StorageDescriptor"]["Columns"]][:5] == [
        "event_id",
        "user_id",
        "event_type",
        "client_ts",
        "server_ts",
    ]
    with EventWriter(settings, tables=tables) as writer:
        writer.write([event(1, platform="ios", score=2.5)])
    entry = glue.get_table(DatabaseName="athena_db", Name="events")["Table"]
    columns = {c["Name"]: c["Type"] for c in entry["StorageDescriptor"]["Columns"]}
    assert columns["platform"] == "string" and columns["score"] == "double"
    tables.events.refresh()
    assert entry["Parameters"]["metadata_location"] == tables.events.metadata_location


def test_the_read_api_reads_a_table_on_s3(
    s3_settings: Settings, moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Polars reads the Parquet files itself: it must use the catalog's S3 settings (the
    emulator's endpoint and keys), not the process's AWS environment."""
    import lakehouse

    for key in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(key, raising=False)
    sent = [event(i, minutes=(i * 37) % 300, user=f"u{i % 3}") for i in range(45)]
    with EventWriter(s3_settings) as writer:
        writer.write(sent)
    frame = lakehouse.ordered(settings=s3_settings).collect()
    assert frame.height == 45
    for user, rows_of_user in frame.group_by("user_id", maintain_order=True):
        expected = sorted((e["client_ts"], e["event_id"]) for e in sent if e["user_id"] == user[0])
        got = [
            (ts.isoformat().replace("+00:00", "Z"), eid)
            for ts, eid in rows_of_user.select("client_ts", "event_id").iter_rows()
        ]
        assert got == expected


def test_orphans_on_s3_are_deleted_in_batches(
    s3_settings: Settings, moto_server: MotoServer, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """1,500 orphans go in two DeleteObjects requests; every referenced file stays."""
    from datetime import timedelta

    from maintenance.orphans import remove_orphan_files
    from maintenance.paths import IoDelete

    for key in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(key, raising=False)  # the catalog's s3.* settings must suffice
    with EventWriter(s3_settings) as writer:
        writer.write([event(i, minutes=i * 20) for i in range(30)])
    table = load_tables(open_catalog(s3_settings), s3_settings.table).events
    s3 = moto_server.client("s3")
    prefix = table.location().removeprefix(f"s3://{bucket}/")
    orphans = [f"{prefix}/data/orphan-{i:04d}.parquet" for i in range(1500)]
    for key in orphans:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    delete = IoDelete(table.io)
    result = remove_orphan_files(table, older_than=timedelta(0), delete=delete, force=True)
    assert result.orphans_deleted == 1500 and result.delete_failures == 0
    assert delete.batches == 2
    left = [
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for o in page.get("Contents", [])
    ]
    assert not [k for k in left if "/orphan-" in k]
    assert sum(k.endswith(".parquet") for k in left) == 10  # one file per hour, all kept
    assert sorted(rows(table).column("event_id").to_pylist()) == [f"e{i:06d}" for i in range(30)]


def test_health_on_an_s3_warehouse(s3_settings: Settings, moto_server: MotoServer) -> None:
    """``lakehouse health`` reads an S3 table's metadata: files per hour, late events and
    rejects as written."""
    from datetime import timedelta

    from lakehouse.health import health

    with EventWriter(s3_settings) as writer:
        writer.write([event(i, minutes=30 + i) for i in range(20)])  # one hour
        writer.flush()
        late = [event(100 + i, minutes=90 + i, delay=timedelta(hours=30)) for i in range(5)]
        writer.write([*late, {"event_id": "bad"}])  # late into a second hour, and a reject
    tables = load_tables(open_catalog(s3_settings), s3_settings.table)
    report = health(tables, s3_settings)
    assert report.data_files == 2 and report.max_files_per_hour == 1
    assert report.late_records == 5 and report.rejected_records == 1
    assert report.snapshots == 2 and report.late_snapshots == 1
