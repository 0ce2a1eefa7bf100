"""A rejected record whose text UTF-8 cannot hold (a lone surrogate) is stored with the
surrogate escaped, and never blocks the batch it came in."""

from __future__ import annotations

import json
from pathlib import Path

from catalog import open_catalog
from lakehouse.settings import Settings
from lakehouse.tables import load_tables
from tests.writers.events import event, rows
from writers import EventWriter
from writers.rejects import storable


def test_storable_escapes_only_what_utf8_cannot_hold() -> None:
    assert storable(None) is None
    assert storable("plain é ✓") == "plain é ✓"
    assert storable("a\ud800b") == "a\\ud800b"
    assert storable("a\ud800b").encode("utf-8")  # now storable


def test_a_record_with_a_lone_surrogate_is_rejected_and_the_others_land(home: Path) -> None:
    settings = Settings.from_env()
    odd = json.loads(
        '{"event_id": "a\\ud800", "event_type": "v", "client_ts": "2024-05-01T00:00:00Z"}'
    )
    with EventWriter(settings) as writer:
        writer.write([event(0), event(1), odd])
        result = writer.flush()
    assert (result.records_written, result.records_rejected) == (2, 1)
    tables = load_tables(open_catalog(settings), settings.table)
    landed = rows(tables.events).column("event_id").to_pylist()
    assert sorted(landed) == sorted([event(0)["event_id"], event(1)["event_id"]])
    stored = rows(tables.rejected).to_pylist()
    assert len(stored) == 1 and "\\ud800" in stored[0]["raw"], stored
