"""Maintenance lag for ``lakehouse health``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from pyiceberg.table import Table

from lakehouse.settings import Settings
from maintenance import MaintenanceOptions, maintenance_lag, run_maintenance
from tests.maintenance.builders import Fed


def test_lag_before_and_after_a_run(
    sqlite_settings: Settings, sqlite_fed: tuple[Table, Fed]
) -> None:
    table, _ = sqlite_fed
    lag = maintenance_lag(table, sqlite_settings)
    assert lag.late_hours == 3 and lag.oldest_late_hour == "2024-05-01T00"
    assert lag.oldest_late_age is not None and timedelta(0) <= lag.oldest_late_age < timedelta(
        minutes=10
    )
    assert lag.small_files > 0 and lag.hours_pending == 3
    assert lag.last_run is None and lag.last_run_ok is None and lag.lease_holder is None
    json.dumps(lag.to_dict())
    run = run_maintenance(table, MaintenanceOptions())
    table.refresh()
    after = maintenance_lag(table, sqlite_settings, now=datetime.now(UTC))
    assert after.late_hours == 0 and after.oldest_late_age is None
    assert after.small_files == 0 and after.hours_pending == 0
    assert after.last_run is not None and after.last_run["run_id"] == run.run_id
    assert after.last_run_ok is True and after.last_run_age is not None
    body = after.to_dict()
    assert body["last_run"]["files_rewritten"] == run.counts()["files_rewritten"]
    assert body["oldest_late_age_seconds"] is None and body["data_files"] == 3
