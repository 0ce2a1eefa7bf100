"""The writer's buffer: it commits by record count, by bytes and by age (on ``write`` and
on ``flush_if_due``), with thresholds from arguments or from the environment."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

import writers.writer as writer_module
from catalog import open_catalog
from lakehouse.settings import Settings
from lakehouse.tables import load_tables
from tests.writers.events import event, rows
from writers import EventWriter

NEVER = dict(max_records=1 << 40, max_bytes=1 << 40, max_age=1e9)


def committed(settings: Settings) -> list[str]:
    events = load_tables(open_catalog(settings), settings.table).events
    if events.current_snapshot() is None:
        return []
    return sorted(rows(events).column("event_id").to_pylist())


class Clock:
    """A stand-in for the writer's monotonic clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def patch(self, monkeypatch: pytest.MonkeyPatch) -> None:
        fake = SimpleNamespace(monotonic=lambda: self.now, perf_counter=lambda: self.now)
        monkeypatch.setattr(writer_module, "time", fake)


def test_the_byte_threshold_commits(sqlite_settings: Settings) -> None:
    writer = EventWriter(sqlite_settings, **{**NEVER, "max_bytes": 1})
    result = writer.write([event(1)])
    assert result is not None and result.records_written == 1
    assert committed(sqlite_settings) == ["e000001"]
    big = EventWriter(sqlite_settings, **NEVER)
    assert big.write([event(2)]) is None and not big.due()
    assert committed(sqlite_settings) == ["e000001"]
    big.close()
    assert committed(sqlite_settings) == ["e000001", "e000002"]


def test_the_byte_threshold_is_crossed_not_reached_early(sqlite_settings: Settings) -> None:
    probe = EventWriter(sqlite_settings, **NEVER)
    probe.write([event(i) for i in range(10)])
    size = probe._buffer.nbytes  # the bytes 10 events take in the buffer
    assert size > 0
    writer = EventWriter(sqlite_settings, **{**NEVER, "max_bytes": 2 * size})
    assert writer.write([event(i) for i in range(10, 20)]) is None  # size < 2 * size
    result = writer.write([event(i) for i in range(20, 30)])  # now 2 * size: due
    assert result is not None and result.records_written == 20


def test_age_commits_through_flush_if_due(
    sqlite_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    clock.patch(monkeypatch)
    writer = EventWriter(sqlite_settings, **{**NEVER, "max_age": 60.0})
    assert writer.flush_if_due() is None  # empty: never due
    assert writer.write([event(1)]) is None
    clock.now += 59.999
    assert not writer.due() and writer.flush_if_due() is None
    assert committed(sqlite_settings) == []
    clock.now += 0.001  # exactly 60 s after the first row
    result = writer.flush_if_due()
    assert result is not None and result.records_written == 1
    assert committed(sqlite_settings) == ["e000001"]
    assert writer.flush_if_due() is None  # the buffer is empty again
    # the age counts from the oldest row of the new buffer, not from the last commit
    clock.now += 1000
    assert writer.write([event(2)]) is None
    clock.now += 30
    assert writer.flush_if_due() is None


def test_the_record_threshold_is_inclusive(sqlite_settings: Settings) -> None:
    writer = EventWriter(sqlite_settings, **{**NEVER, "max_records": 5})
    assert writer.write([event(i) for i in range(4)]) is None
    result = writer.write([event(4)])
    assert result is not None and result.records_written == 5


def test_thresholds_from_the_environment(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKEHOUSE_BUFFER_MAX_RECORDS", "3")
    monkeypatch.setenv("LAKEHOUSE_BUFFER_MAX_BYTES", "1GB")
    monkeypatch.setenv("LAKEHOUSE_BUFFER_MAX_AGE", "90s")
    settings = Settings.from_env()
    writer = EventWriter(settings)
    assert (writer.max_records, writer.max_bytes, writer.max_age) == (3, 1 << 30, 90.0)
    assert writer.write([event(1), event(2)]) is None
    result = writer.write([event(3)])
    assert result is not None and result.records_written == 3
    monkeypatch.setenv("LAKEHOUSE_BUFFER_MAX_BYTES", "1")
    tiny = EventWriter(Settings.from_env())
    result = tiny.write([event(9)])
    assert result is not None and result.records_written == 1
    assert committed(settings) == ["e000001", "e000002", "e000003", "e000009"]


def test_a_zero_age_from_the_environment_commits_every_write(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAKEHOUSE_BUFFER_MAX_AGE", "0s")
    settings = Settings.from_env()
    assert settings.buffer_max_age == timedelta(0)
    writer = EventWriter(settings)
    assert writer.max_age == 0.0
    result = writer.write([event(1)])
    assert result is not None and result.records_written == 1
