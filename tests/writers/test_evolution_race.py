"""Two writers add different columns at the same moment (a barrier holds each after it
read the schema and before it commits its change): one schema commit loses, is retried
on the new schema, and both columns and both rows land, with their values."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from pyiceberg.table import Table

from catalog import open_catalog
from lakehouse.settings import Settings
from lakehouse.tables import load_tables
from tests.writers.events import event, rows
from writers import EventWriter


def test_two_concurrent_column_additions_both_land(
    sqlite_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with EventWriter(sqlite_settings) as seed:  # the table, with its core columns only
        seed.write([event(0)])
    barrier = threading.Barrier(2, timeout=60)
    calls: list[str] = []
    waited: set[int] = set()
    original = Table.update_schema

    def update_schema(self: Table, *args: Any, **kwargs: Any) -> Any:
        calls.append(threading.current_thread().name)
        if threading.get_ident() not in waited:  # the first attempt of each writer
            waited.add(threading.get_ident())
            barrier.wait()  # both have read the old schema: now both commit
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Table, "update_schema", update_schema)
    errors: list[BaseException] = []

    def write(record: dict[str, Any]) -> None:
        try:
            with EventWriter(sqlite_settings) as writer:
                writer.write([record])
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [
        threading.Thread(target=write, args=(event(1, platform="ios"),), name="a"),
        threading.Thread(target=write, args=(event(2, device="phone"),), name="b"),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(calls) == 3, calls  # one of the two lost the race and tried again
    events = load_tables(open_catalog(sqlite_settings), sqlite_settings.table).events
    names = [f.name for f in events.schema().fields]
    assert {"platform", "device"} <= set(names)
    got = {r["event_id"]: r for r in rows(events).to_pylist()}
    assert sorted(got) == ["e000000", "e000001", "e000002"]
    assert (got["e000001"]["platform"], got["e000001"]["device"]) == ("ios", None)
    assert (got["e000002"]["platform"], got["e000002"]["device"]) == (None, "phone")
    assert got["e000000"]["platform"] is None and got["e000000"]["device"] is None
