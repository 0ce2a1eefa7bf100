"""``lakehouse check`` on real tables: each kind of damage is found (exit 1, listed), a
whole table checks clean (exit 0), the result reaches ``health``, and
``--repair-to-last-good`` brings back a table whose newest data file was deleted."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from click.testing import CliRunner
from pyiceberg.table import Table

from catalog import open_catalog
from lakehouse.cli.main import cli
from lakehouse.settings import Settings
from lakehouse.tables import ensure_tables
from maintenance.paths import canonical
from tests.writers.test_ingest import write_zone
from writers import ingest


@dataclass
class Lake:
    settings: Settings
    zone: Path
    events: int  # distinct events landed (the oracle: counted from the landing files)

    def table(self) -> Table:
        return open_catalog(self.settings).load_table(self.settings.table.identifier)


def _landed_ids(zone: Path) -> set[str]:
    import gzip

    ids: set[str] = set()
    for path in zone.rglob("*"):
        if path.suffix not in (".gz", ".jsonl"):
            continue
        body = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        for line in body.decode().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and "event_id" in record:
                ids.add(record["event_id"])
    return ids


@pytest.fixture
def lake(settings: Settings, tmp_path: Path) -> Lake:
    ensure_tables(open_catalog(settings), settings.table)
    zone = tmp_path / "zone"
    write_zone(zone, files=6, per_file=40)
    ingest([str(zone)], settings, max_group_files=2)  # three batches, three+ commits
    return Lake(settings, zone, len(_landed_ids(zone)))


def _check(*args: str) -> tuple[int, dict, str]:
    result = CliRunner().invoke(cli, ["check", "--json", *args], catch_exceptions=False)
    assert result.stdout.count("\n") == 1, result.stdout  # one line
    return result.exit_code, json.loads(result.stdout), result.stderr


def _kinds(body: dict) -> set[str]:
    return {p["kind"] for p in body["problems"]}


def _newest_data_file(table: Table) -> str:
    snapshot = table.current_snapshot()
    assert snapshot is not None
    added = [
        e.data_file.file_path
        for m in snapshot.manifests(table.io)
        if m.added_snapshot_id == snapshot.snapshot_id
        for e in m.fetch_manifest_entry(table.io)
    ]
    assert added
    return sorted(added)[-1]


def _rows(table: Table) -> int:
    return table.refresh().scan().to_arrow().num_rows


def test_a_whole_table_checks_clean_and_health_shows_it(lake: Lake) -> None:
    table = lake.table()
    assert _rows(table) == lake.events > 0
    code, body, err = _check("--deep")
    assert code == 0, (body, err)
    assert body["ok"] and body["problems"] == []
    assert body["data_files_read"] == body["sort_files_read"] > 0
    assert body["ingested_batches_checked"] == 3
    health = CliRunner().invoke(cli, ["health", "--json"], catch_exceptions=False)
    maintenance = json.loads(health.stdout)["maintenance"]
    assert maintenance["last_check_ok"] is True and maintenance["last_check_problems"] == 0
    assert maintenance["last_check_at"] == body["checked_at"]


def test_a_missing_data_file_is_found_and_repaired(lake: Lake, settings: Settings) -> None:
    table = lake.table()
    doomed = _newest_data_file(table)
    broken = table.current_snapshot()
    assert broken is not None
    Path(canonical(doomed)).unlink()
    code, body, _ = _check()
    assert code == 1
    missing = [p for p in body["problems"] if p["kind"] == "missing-file"]
    assert [canonical(p["path"]) for p in missing] == [canonical(doomed)]
    assert body["last_good_snapshot_id"] == broken.parent_snapshot_id
    health = CliRunner().invoke(cli, ["health", "--json"], catch_exceptions=False)
    assert json.loads(health.stdout)["maintenance"]["last_check_ok"] is False
    # text output names the file and the way back
    text = CliRunner().invoke(cli, ["check"], catch_exceptions=False)
    assert text.exit_code == 1 and "--repair-to-last-good" in text.stdout
    assert canonical(doomed) in text.stdout.replace("file://", "")

    code, body, _ = _check("--repair-to-last-good")
    assert code == 0, body
    assert body["rollback"]["to_snapshot_id"] == broken.parent_snapshot_id
    assert body["current_snapshot_id"] == broken.parent_snapshot_id
    assert len(body["rollback"]["batches_to_reingest"]) == 1
    assert _rows(table) < lake.events  # the lost batch is gone from the table...
    ingest([str(lake.zone)], settings)  # ...and its landing files are read again
    assert _rows(table) == lake.events
    ids = table.refresh().scan(selected_fields=("event_id",)).to_arrow().column("event_id")
    assert len(set(ids.to_pylist())) == lake.events
    assert _check()[0] == 0


def test_a_missing_manifest_is_found(lake: Lake) -> None:
    table = lake.table()
    snapshot = table.current_snapshot()
    assert snapshot is not None
    manifest = snapshot.manifests(table.io)[0].manifest_path
    Path(canonical(manifest)).unlink()
    code, body, _ = _check()
    assert code == 1
    assert canonical(manifest) in {canonical(p["path"]) for p in body["problems"] if p["path"]}
    assert "missing-file" in _kinds(body)


def test_a_truncated_file_is_found_with_deep(lake: Lake) -> None:
    table = lake.table()
    path = Path(canonical(_newest_data_file(table)))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    code, body, _ = _check("--deep")
    assert code == 1
    unreadable = [p for p in body["problems"] if p["kind"] == "unreadable-file"]
    assert unreadable and {canonical(p["path"]) for p in unreadable} == {str(path)}


def test_a_wrong_row_count_is_found_with_deep(lake: Lake) -> None:
    import pyarrow.parquet as pq

    table = lake.table()
    path = Path(canonical(_newest_data_file(table)))
    rows = pq.read_table(path)
    assert rows.num_rows > 1
    pq.write_table(rows.slice(0, rows.num_rows - 1), path)  # one row fewer than the manifest says
    assert _check()[0] == 0  # footers are read only with --deep
    code, body, _ = _check("--deep")
    assert code == 1
    [problem] = [p for p in body["problems"] if p["kind"] == "row-count-mismatch"]
    assert canonical(problem["path"]) == str(path)
    assert f"{rows.num_rows - 1} rows" in problem["message"]


def test_an_unsorted_file_written_behind_the_projects_back_is_found(lake: Lake) -> None:
    table = lake.table()
    start = datetime(2024, 6, 1, 5, tzinfo=UTC)
    n = 20
    rows = pa.table(
        {
            "event_id": [f"behind-{i:03d}" for i in range(n)],
            "user_id": ["u"] * n,
            "event_type": ["view"] * n,
            "client_ts": [start + timedelta(seconds=n - i) for i in range(n)],  # descending
            "server_ts": [start + timedelta(minutes=1)] * n,
            "session_id": [None] * n,
            "properties": ["{}"] * n,
        }
    )
    schema = table.schema().as_arrow()
    table.append(rows.select([f.name for f in schema]).cast(schema))
    code, body, _ = _check("--deep")
    assert code == 1
    bad = [canonical(p["path"]) for p in body["problems"] if p["kind"] == "unsorted-file"]
    undeclared = [
        canonical(p["path"]) for p in body["problems"] if p["kind"] == "sort-order-undeclared"
    ]
    assert len(bad) == 1 and undeclared == bad
    # the sample is reproducible: the same seed reads the same number of files
    first = _check("--sample", "1", "--seed", "3")[1]
    assert first["sort_files_read"] == 1
    assert _check("--sample", "1", "--seed", "3")[1]["problems"] == first["problems"]


def test_a_missing_companion_and_a_log_ahead_of_the_table(lake: Lake) -> None:
    table = lake.table()
    snapshot = table.current_snapshot()
    assert snapshot is not None and snapshot.parent_snapshot_id is not None
    # roll back behind the check's back: the ingest log still lists the newest batch
    table.manage_snapshots().rollback_to_snapshot(snapshot.parent_snapshot_id).commit()
    code, body, _ = _check()
    assert code == 1 and _kinds(body) == {"ingest-log-ahead"}
    open_catalog(lake.settings).drop_table(lake.settings.table.sibling("rejected").identifier)
    code, body, _ = _check()
    assert code == 1 and _kinds(body) == {"ingest-log-ahead", "companion-missing"}


def test_a_damaged_manifest_list_is_reported_not_raised(lake: Lake) -> None:
    table = lake.table()
    snapshot = table.current_snapshot()
    assert snapshot is not None
    Path(canonical(snapshot.manifest_list)).write_bytes(b"not avro at all")
    code, body, _ = _check()
    assert code == 1
    assert {(p["kind"], canonical(p["path"])) for p in body["problems"]} == {
        ("unreadable-file", canonical(snapshot.manifest_list))
    }


def test_an_unknown_table_is_a_usage_error(lake: Lake) -> None:
    result = CliRunner().invoke(cli, ["check", "--table", "analytics.nope"])
    assert result.exit_code == 2 and "lakehouse init" in result.stderr
