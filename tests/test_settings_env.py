"""Settings read from the environment: every LAKEHOUSE_* variable parsed into its type,
empty values ignored, bad values refused with the variable's name, explicit overrides
(CLI flags) winning. Expected values are worked out by hand."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from lakehouse.errors import ConfigError
from lakehouse.settings import Settings, TableName


def test_every_variable_is_parsed_into_its_type() -> None:
    env = {
        "LAKEHOUSE_HOME": "/srv/lake",
        "LAKEHOUSE_CATALOG": "prod",
        "LAKEHOUSE_TABLE": "web.clicks",
        "LAKEHOUSE_ALLOWED_LATENESS": "90m",
        "LAKEHOUSE_MAX_FUTURE_SKEW": "2h",
        "LAKEHOUSE_TARGET_FILE_SIZE": "64MB",
        "LAKEHOUSE_BUFFER_MAX_RECORDS": "5000",
        "LAKEHOUSE_BUFFER_MAX_BYTES": "1GiB",
        "LAKEHOUSE_BUFFER_MAX_AGE": "30s",
        "LAKEHOUSE_MAX_COLUMNS": "50",
    }
    s = Settings.from_env(env)
    assert s.home == Path("/srv/lake") and s.catalog == "prod"
    assert s.table == TableName("web", "clicks")
    assert s.allowed_lateness == timedelta(minutes=90)
    assert s.max_future_skew == timedelta(hours=2)
    assert s.target_file_size == 64 * 1024 * 1024
    assert s.buffer_max_records == 5000
    assert s.buffer_max_bytes == 1024**3
    assert s.buffer_max_age == timedelta(seconds=30)
    assert s.max_columns == 50


def test_defaults_and_empty_values() -> None:
    defaults = Settings.from_env({})
    assert defaults.allowed_lateness == timedelta(hours=1)
    assert defaults.buffer_max_records == 1_000_000
    assert defaults.buffer_max_bytes == 256 * 1024 * 1024
    assert defaults.buffer_max_age == timedelta(seconds=60)
    assert defaults.table == TableName("analytics", "events")
    empty = Settings.from_env({"LAKEHOUSE_ALLOWED_LATENESS": "", "LAKEHOUSE_MAX_COLUMNS": ""})
    assert empty == defaults


def test_overrides_win_and_none_is_ignored() -> None:
    env = {"LAKEHOUSE_ALLOWED_LATENESS": "90m", "LAKEHOUSE_BUFFER_MAX_BYTES": "1MB"}
    s = Settings.from_env(env, allowed_lateness="5m", buffer_max_bytes=None)
    assert s.allowed_lateness == timedelta(minutes=5)
    assert s.buffer_max_bytes == 1024 * 1024


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("LAKEHOUSE_ALLOWED_LATENESS", "soon"),
        ("LAKEHOUSE_BUFFER_MAX_AGE", "-"),
        ("LAKEHOUSE_BUFFER_MAX_BYTES", "lots"),
        ("LAKEHOUSE_BUFFER_MAX_RECORDS", "1e3"),
        ("LAKEHOUSE_MAX_COLUMNS", "0"),
        ("LAKEHOUSE_TABLE", "events"),
        ("LAKEHOUSE_TABLE", "analytics.events_rejected"),
    ],
)
def test_a_bad_value_names_its_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        Settings.from_env({variable: value})


def test_a_bad_override_names_its_flag() -> None:
    with pytest.raises(ConfigError, match="--allowed-lateness"):
        Settings.from_env({}, allowed_lateness="whenever")
