"""An orphan window under 24 hours is refused (exit 2, nothing deleted) unless forced:
files of a commit in flight look exactly like orphans."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from click.testing import CliRunner
from pyiceberg.table import Table

from lakehouse.cli.main import cli
from lakehouse.errors import UsageError
from maintenance import MaintenanceOptions, remove_orphan_files
from tests.maintenance.builders import Fed, multiset, table_rows
from tests.maintenance.test_expire import files_on_disk
from tests.maintenance.test_orphans import _plant


def _maintain(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["maintain", *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_run_refuses_a_short_orphan_window_and_deletes_nothing(
    fed: tuple[Table, Fed],
) -> None:
    table, _ = fed
    orphan = _plant(table, "orphan.parquet", timedelta(hours=2))
    before = files_on_disk(table)
    metadata_before = table.refresh().metadata_location
    code, out, err = _maintain("run", "--json", "--orphan-retention", "1h")
    assert code == 2, (out, err)
    assert "in flight" in err and "--force" in err and "24h" in err
    assert files_on_disk(table) == before and orphan.exists()
    assert table.refresh().metadata_location == metadata_before  # no job ran at all
    # serve refuses the same way, before its first run
    code, _, err = _maintain("serve", "--max-runs", "1", "--orphan-retention", "0s")
    assert code == 2 and "in flight" in err
    assert files_on_disk(table) == before


def test_force_removes_the_orphan_and_keeps_every_referenced_file(
    fed: tuple[Table, Fed],
) -> None:
    table, data = fed
    orphan = _plant(table, "orphan.parquet", timedelta(hours=2))
    young = _plant(table, "in-flight.parquet", timedelta(0))
    before = files_on_disk(table)
    code, out, err = _maintain(
        "run", "--json", "--orphan-retention", "1h", "--force", "--snapshot-retention", "30d"
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["orphans"]["orphan_paths"] == [f"file://{orphan}"]
    assert not orphan.exists() and young.exists()
    # Compaction may add files; every file that was there before, but the orphan, stays.
    assert before - {str(orphan)} <= files_on_disk(table)
    # compaction ran too (and removed the fed duplicates): the rows are the expected ones
    assert multiset(table_rows(table.refresh())) == multiset(data.expected())


def test_python_api_refuses_unless_forced(fed: tuple[Table, Fed]) -> None:
    table, _ = fed
    orphan = _plant(table, "orphan.parquet", timedelta(hours=5))
    with pytest.raises(UsageError, match="in flight"):
        remove_orphan_files(table, older_than=timedelta(hours=4))
    with pytest.raises(UsageError, match="--force"):
        MaintenanceOptions(orphan_retention=timedelta(hours=23))
    assert orphan.exists()
    # a dry run deletes nothing and may look with any window; 24h needs no force
    assert (
        remove_orphan_files(table, older_than=timedelta(hours=1), dry_run=True).orphans_found == 1
    )
    MaintenanceOptions(orphan_retention=timedelta(hours=24))
    MaintenanceOptions(orphan_retention=timedelta(hours=1), jobs=("compaction",))
    assert orphan.exists()
    result = remove_orphan_files(table, older_than=timedelta(hours=1), force=True)
    assert result.orphans_deleted == 1 and not orphan.exists()
