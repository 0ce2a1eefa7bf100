"""Landing-zone ingest: exactly once per file, rejects kept, exit codes, JSON summary."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from catalog import open_catalog
from lakehouse.cli.main import cli
from lakehouse.settings import Settings
from lakehouse.tables import load_tables
from tests.writers.events import event, rows
from writers import ingest


def write_zone(root: Path, files: int = 6, per_file: int = 50, *, bad_every: int = 0) -> list[dict]:
    """Files under YYYY/MM/DD/HH/, half gzipped, with resends across files."""
    events = []
    for f in range(files):
        folder = root / "2024" / "05" / "01" / f"{f:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        batch = [event(f * per_file + i) for i in range(per_file)]
        if f:
            batch.append(event((f - 1) * per_file))  # a resend of an event from the previous file
        events.extend(batch)
        lines = [json.dumps(e) for e in batch]
        if bad_every:
            lines.insert(len(lines) // 2, '{"event_id": "broken",')
        body = ("\n".join(lines) + "\n").encode()
        if f % 2:
            (folder / f"part-{f}.ndjson.gz").write_bytes(gzip.compress(body))
        else:
            (folder / f"part-{f}.jsonl").write_bytes(body)
    (root / "_SUCCESS").write_text("")  # a marker: not a landing file
    return events


def test_ingest_is_exactly_once_per_file(settings: Settings, tmp_path: Path) -> None:
    zone = tmp_path / "landing"
    write_zone(zone, bad_every=1)
    first = ingest([str(zone)], settings, max_group_files=4)
    assert (first.files, first.commits) == (6, 2)
    assert first.records_read == 6 * 50 + 5 + 6
    assert (first.records_written, first.duplicates_dropped, first.records_rejected) == (300, 5, 6)
    again = ingest([str(zone)], settings, look_back=None)  # a full listing
    assert (again.files, again.files_skipped, again.records_read, again.commits) == (0, 6, 0, 0)
    # by default the zone (keys YYYY/MM/DD/HH/) is listed from 2 h before its last hour
    later = ingest([str(zone)], settings)
    assert (later.files, later.files_skipped, later.records_read, later.commits) == (0, 3, 0, 0)
    t = load_tables(open_catalog(settings), settings.table)
    ids = rows(t.events).column("event_id").to_pylist()
    assert len(ids) == len(set(ids)) == 300
    rejected = rows(t.rejected).to_pylist()
    assert len(rejected) == 6
    assert all(r["raw"] == '{"event_id": "broken",' and r["line"] == 26 for r in rejected)
    assert all(
        r["source"].startswith("file://") and r["source"].endswith((".jsonl", ".gz"))
        for r in rejected
    )
    logged = rows(t.ingested).to_pylist()
    assert sorted(r["source"] for r in logged) == sorted({r["source"] for r in rejected})
    assert sum(r["records"] for r in logged) == first.records_read


def test_new_files_are_picked_up_and_old_ones_skipped(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    zone = tmp_path / "landing"
    write_zone(zone, files=2)
    ingest([str(zone)], sqlite_settings)
    extra = zone / "2024" / "05" / "02" / "00"
    extra.mkdir(parents=True)
    (extra / "late.ndjson").write_text(json.dumps(event(9000)) + "\n" + json.dumps(event(0)) + "\n")
    result = ingest([str(zone)], sqlite_settings)
    assert (
        result.files,
        result.files_skipped,
        result.records_written,
        result.duplicates_dropped,
    ) == (1, 2, 1, 1)


def test_truncated_gzip_keeps_complete_lines_and_rejects_the_rest(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    body = ("\n".join(json.dumps(event(i)) for i in range(200)) + "\n").encode()
    blob = gzip.compress(body)
    path = tmp_path / "cut.ndjson.gz"
    path.write_bytes(blob[: len(blob) // 2])
    result = ingest([str(path)], sqlite_settings)
    assert 0 < result.records_written < 200
    assert result.records_rejected == 1
    assert (
        result.records_read
        == result.records_written + result.duplicates_dropped + result.records_rejected
    )
    rejected = rows(
        load_tables(open_catalog(sqlite_settings), sqlite_settings.table).rejected
    ).to_pylist()
    assert "truncated gzip" in rejected[0]["reason"]


def test_empty_files_are_logged_and_not_reread(sqlite_settings: Settings, tmp_path: Path) -> None:
    zone = tmp_path / "zone"
    zone.mkdir()
    (zone / "empty.ndjson").write_bytes(b"")
    (zone / "empty2.ndjson.gz").write_bytes(gzip.compress(b""))
    assert ingest([str(zone)], sqlite_settings).files == 2
    assert ingest([str(zone)], sqlite_settings).files_skipped == 2


def test_hidden_and_underscore_paths_are_not_ingested(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    zone = tmp_path / "zone"
    for sub in (".lakehouse/warehouse", "_tmp", "2024"):
        (zone / sub).mkdir(parents=True)
        (zone / sub / "x.json").write_text(json.dumps(event(1)) + "\n")
    (zone / "2024" / ".part.json").write_text(json.dumps(event(2)) + "\n")
    result = ingest([str(zone)], sqlite_settings)
    assert (result.files, result.records_written) == (1, 1)


def test_cli_ingest_json_summary_and_exit_codes(home: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    zone = tmp_path / "landing"
    write_zone(zone, files=2)
    assert runner.invoke(cli, ["init"]).exit_code == 0  # ingest never creates the table
    ok = runner.invoke(cli, ["ingest", str(zone), "--json"])
    assert ok.exit_code == 0, ok.output
    summary = json.loads(ok.stdout)
    for key in (
        "files",
        "records_read",
        "records_written",
        "duplicates_dropped",
        "records_rejected",
        "late_records",
    ):
        assert key in summary
    assert (summary["files"], summary["records_written"], summary["duplicates_dropped"]) == (
        2,
        100,
        1,
    )

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.ndjson").write_text(json.dumps(event(5000)) + "\nnot json\n")
    partial = runner.invoke(cli, ["ingest", str(bad), "--json"])
    assert partial.exit_code == 1
    assert json.loads(partial.stdout)["records_rejected"] == 1

    missing = runner.invoke(cli, ["ingest", str(tmp_path / "nope"), "--json"])
    assert missing.exit_code == 2
    assert json.loads(missing.stderr)["type"] == "UsageError"

    bad_table = runner.invoke(cli, ["ingest", str(zone), "--table", "x;drop"])
    assert bad_table.exit_code == 2 and "invalid table name" in bad_table.stderr


def test_cli_init_is_idempotent(home: Path) -> None:
    runner = CliRunner()
    first = runner.invoke(cli, ["init", "--json"])
    assert first.exit_code == 0
    assert json.loads(first.stdout)["created"] == [
        "analytics",
        "analytics.events",
        "analytics.events_rejected",
        "analytics.events_ingested",
    ]
    second = runner.invoke(cli, ["init"])
    assert second.exit_code == 0 and "nothing to do" in second.stdout


def test_cli_health_before_init_says_what_to_do(home: Path) -> None:
    result = CliRunner().invoke(cli, ["health"])
    assert result.exit_code == 2 and "lakehouse init" in result.stderr


@pytest.mark.slow
def test_demo_runs_twice_safely(home: Path) -> None:
    runner = CliRunner()
    first = runner.invoke(cli, ["demo", "--events", "3000", "--json"])
    assert first.exit_code == 0, first.output
    out = json.loads(first.stdout)
    ing = out["ingest"]
    assert ing["records_written"] == 3000
    assert (
        ing["records_read"]
        == ing["records_written"] + ing["duplicates_dropped"] + ing["records_rejected"]
    )
    assert (
        ing["late_records"] > 0 and ing["duplicates_dropped"] > 0 and ing["records_rejected"] >= 1
    )
    assert out["health"]["total_records"] == 3000
    second = runner.invoke(cli, ["demo", "--events", "3000", "--json"])
    assert second.exit_code == 0
    again = json.loads(second.stdout)
    assert again["landing"]["reused"] is True
    assert again["ingest"]["records_read"] == 0 and again["health"]["total_records"] == 3000


def test_rereading_a_file_under_another_grouping_does_not_double_its_rejects(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    zone = tmp_path / "zone"
    write_zone(zone, files=3, bad_every=1)
    from writers import EventWriter
    from writers.sources.landing import discover, read_source

    # simulate a crash after the events and rejects of one file landed but before its
    # ingest-log row: the re-run reads it again, in a different group
    fs, files = discover([str(zone)])
    writer = EventWriter(sqlite_settings)
    from datetime import UTC, datetime

    writer.add_parsed(read_source(fs, files[0]), receipt_time=datetime.now(UTC))
    writer.flush(batch_key="crashed-run")
    result = ingest([str(zone)], sqlite_settings)
    assert (
        result.records_read
        == result.records_written + result.duplicates_dropped + result.records_rejected
    )
    rejected = rows(
        load_tables(open_catalog(sqlite_settings), sqlite_settings.table).rejected
    ).to_pylist()
    assert len(rejected) == 3 and len({(r["source"], r["line"]) for r in rejected}) == 3
    events = rows(load_tables(open_catalog(sqlite_settings), sqlite_settings.table).events)
    assert events.num_rows == 150


def test_each_file_keeps_its_own_receipt_time(sqlite_settings: Settings, tmp_path: Path) -> None:
    import os
    from datetime import UTC, datetime

    zone = tmp_path / "zone"
    zone.mkdir()
    stamps = {
        "a.ndjson": datetime(2024, 5, 1, 2, 30, tzinfo=UTC),
        "b.ndjson": datetime(2024, 5, 2, 9, tzinfo=UTC),
    }
    for i, (name, mtime) in enumerate(stamps.items()):
        record = {k: v for k, v in event(i, minutes=60).items() if k != "server_ts"}
        (zone / name).write_text(json.dumps(record) + "\n")
        os.utime(zone / name, (mtime.timestamp(), mtime.timestamp()))
    result = ingest([str(zone)], sqlite_settings)
    assert (
        result.records_written == 2 and result.late_records == 1
    )  # b arrived a day after its hour
    got = {
        r["event_id"]: r["server_ts"]
        for r in rows(
            load_tables(open_catalog(sqlite_settings), sqlite_settings.table).events
        ).to_pylist()
    }
    assert got == {"e000000": stamps["a.ndjson"], "e000001": stamps["b.ndjson"]}
