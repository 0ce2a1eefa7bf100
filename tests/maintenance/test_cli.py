"""``lakehouse maintain`` through click's CliRunner: exit codes and JSON."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from pyiceberg.table import Table

from lakehouse.cli.main import cli
from maintenance import LAST_RUN_PROPERTY, LEASE_PROPERTY, TableLease
from maintenance.paths import canonical
from tests.maintenance.assertions import assert_compacted, live_files
from tests.maintenance.builders import Fed


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["maintain", *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_plan_json_shows_the_plan_and_changes_nothing(sqlite_fed: tuple[Table, Fed]) -> None:
    table, _ = sqlite_fed
    before = table.metadata_location
    code, out, _ = invoke("plan", "--json")
    assert code == 0
    plan = json.loads(out)
    assert plan["groups_planned"] == 3 and plan["hours_selected"] == 3
    assert {tuple(g["reasons"]) for g in plan["groups"]} == {("small-files", "late-data")}
    assert all(g["files"] == len(g["file_paths"]) for g in plan["groups"])
    assert table.refresh().metadata_location == before
    code, out, _ = invoke("plan", "--files")
    assert code == 0 and "small-files, late-data" in out and ".parquet" in out


def test_run_json_reports_typed_counts(fed: tuple[Table, Fed]) -> None:
    table, data = fed
    files = len(live_files(table))
    code, out, err = invoke(
        "run", "--json", "--snapshot-retention", "0s", "--orphan-retention", "0s", "--force"
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["ok"] is True and result["failures"] == []
    assert result["files_rewritten"] == files and result["files_added"] == 3
    assert result["duplicates_removed"] == data.duplicates
    assert result["bytes_rewritten"] > 0
    assert result["snapshots_expired"] > 0 and result["files_deleted"] > 0
    assert result["orphans_deleted"] == 0
    assert result["compaction"]["groups_committed"] == 3
    assert result["expiry"]["data_files_deleted"] == files
    assert_compacted(table, data)
    table.refresh()
    assert LEASE_PROPERTY not in table.properties
    last = json.loads(table.properties[LAST_RUN_PROPERTY])
    assert last["ok"] and last["files_rewritten"] == files and last["run_id"] == result["run_id"]


def test_dry_run_changes_nothing(sqlite_fed: tuple[Table, Fed]) -> None:
    table, _ = sqlite_fed
    before = table.metadata_location
    disk = sorted(Path(canonical(table.location())).rglob("*"))
    code, out, _ = invoke(
        "run", "--dry-run", "--json", "--snapshot-retention", "0s", "--orphan-retention", "0s"
    )
    assert code == 0
    result = json.loads(out)
    assert result["dry_run"] and result["files_rewritten"] > 0 and result["snapshots_expired"] > 0
    assert table.refresh().metadata_location == before
    assert sorted(Path(canonical(table.location())).rglob("*")) == disk
    code, out, _ = invoke("run", "--dry-run")
    assert code == 0 and "would rewrite" in out


def test_a_failed_group_exits_1_and_the_others_commit(sqlite_fed: tuple[Table, Fed]) -> None:
    table, _ = sqlite_fed
    victim = next(
        path
        for path, hour, _, _ in live_files(table)
        if hour == min(h for _, h, _, _ in live_files(table))
    )
    Path(canonical(victim)).write_bytes(b"not parquet at all")
    code, out, err = invoke("run", "--json")
    assert code == 1
    result = json.loads(out)
    assert not result["ok"] and len(result["failures"]) == 1
    assert result["failures"][0]["hour"] == "2024-05-01T00"
    assert result["compaction"]["groups_committed"] == 2
    code, out, err = invoke("run")
    assert code == 1 and "group 2024-05-01T00#1 failed" in err


def test_usage_and_config_errors_exit_2(sqlite_fed: tuple[Table, Fed]) -> None:
    code, _, err = invoke("run", "--snapshot-retention", "5 fortnights")
    assert code == 2 and "duration" in err
    code, _, err = invoke("run", "--retain-last", "0")
    assert code == 2
    code, _, err = invoke("plan", "--json", "--table", "analytics.nothing_here")
    assert code == 2 and json.loads(err)["type"] == "ConfigError"
    code, _, err = invoke("plan", "--target-file-size", "lots")
    assert code == 2


def test_held_lease_exits_0_and_says_so(sqlite_fed: tuple[Table, Fed]) -> None:
    table, _ = sqlite_fed
    TableLease(table, owner="cronjob-7").acquire()
    code, out, _ = invoke("run", "--json")
    assert code == 0
    assert "held by cronjob-7" in json.loads(out)["skipped_reason"]
    code, out, _ = invoke("run", "--no-lease", "--json")
    assert code == 0 and json.loads(out)["files_rewritten"] > 0


def test_serve_runs_and_logs_each_run(sqlite_fed: tuple[Table, Fed]) -> None:
    table, data = sqlite_fed
    code, out, err = invoke("serve", "--every", "0s", "--max-runs", "2", "--json")
    assert code == 0, err
    runs = [json.loads(line) for line in out.splitlines()]
    assert len(runs) == 2 and all(r["ok"] for r in runs)
    assert runs[0]["files_rewritten"] > 0 and runs[1]["files_rewritten"] == 0
    assert_compacted(table, data)
    code, out, _ = invoke("serve", "--every", "0s", "--max-runs", "1")
    assert code == 0 and " ok in " in out
