"""A storage failure that outlasts ``LAKEHOUSE_STORAGE_RETRIES``: the commit step is
tried exactly that many times, then a retryable StorageError reaches the caller with
nothing committed and the batch still buffered; once storage is back the same batch
lands once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import writers.commit as commit_module
from catalog import open_catalog
from lakehouse.errors import StorageError
from lakehouse.settings import Settings
from lakehouse.tables import load_tables
from tests.writers.events import event, rows
from writers import EventWriter


def test_exhausted_storage_retries_raise_and_keep_the_batch(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAKEHOUSE_STORAGE_RETRIES", "3")
    settings = Settings.from_env()
    writer = EventWriter(settings)
    writer.write([event(i) for i in range(5)])
    tries: list[int] = []
    original = commit_module.write_sorted

    def failing(*args: Any, **kwargs: Any) -> Any:
        tries.append(1)
        raise OSError("When uploading part: AWS Error SLOW_DOWN (HTTP status 503)")

    monkeypatch.setattr(commit_module, "write_sorted", failing)
    with pytest.raises(StorageError, match="SLOW_DOWN") as caught:
        writer.flush()
    assert caught.value.retryable
    assert len(tries) == 3
    events = load_tables(open_catalog(settings), settings.table).events
    assert events.current_snapshot() is None  # nothing committed
    monkeypatch.setattr(commit_module, "write_sorted", original)
    result = writer.flush()  # storage is back: the same buffered batch, once
    assert result.records_written == 5
    assert sorted(rows(events).column("event_id").to_pylist()) == [f"e{i:06d}" for i in range(5)]


def test_the_default_is_six_attempts(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lakehouse.retry import retry_storage

    monkeypatch.delenv("LAKEHOUSE_STORAGE_RETRIES", raising=False)
    tries: list[int] = []

    def step() -> None:
        tries.append(1)
        raise StorageError("still down")

    with pytest.raises(StorageError):
        retry_storage(step, initial_wait=0.001)
    assert len(tries) == 6
    monkeypatch.setenv("LAKEHOUSE_STORAGE_RETRIES", "1")
    with pytest.raises(StorageError):
        retry_storage(step, initial_wait=0.001)
    assert len(tries) == 7
