"""Two writers committing the same batch at once: it lands once.

The second writer looked its key up before the first committed, so it goes on to write;
the catalog swap must then refuse it (the key is checked inside the swap), and its retry
finds the key and commits nothing. Without that check pyiceberg's own retry rebuilds the
losing append on the new head and the batch lands twice."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pyarrow as pa
import pytest

from catalog import open_catalog
from catalog.batch_key import AssertNoBatchKey, BatchKeyLanded
from lakehouse import summary
from lakehouse.settings import Settings
from lakehouse.tables import ensure_tables
from tests.writers.events import event, rows
from tests.writers.test_commit_races import _batch
from writers import EventWriter, commit


def _keyed(table) -> Counter[str]:
    table.refresh()
    return Counter(
        (s.summary.additional_properties if s.summary else {}).get(summary.BATCH_KEY, "")
        for s in table.metadata.snapshots
    )


def test_the_same_events_batch_committed_by_two_writers_lands_once(settings: Settings) -> None:
    with EventWriter(settings) as writer:
        writer.write([event(i, minutes=i) for i in range(10)])
    stale = open_catalog(settings).load_table(settings.table.identifier)
    other = open_catalog(settings).load_table(settings.table.identifier)
    batch = _batch(settings, range(10, 20))
    first = commit.commit_events(
        other, batch, batch.slice(0, 0), key="k", late_hours=[], writer="b"
    )
    # `stale` has not seen that commit: its look-up of the key finds nothing
    again = commit.commit_events(
        stale, batch, batch.slice(0, 0), key="k", late_hours=[], writer="a"
    )
    assert again == first
    ids = rows(stale).column("event_id").to_pylist()
    assert Counter(ids) == Counter(f"e{i:06d}" for i in range(20))
    assert _keyed(stale)["k"] == 1


def test_the_same_ledger_batch_appended_by_two_writers_lands_once(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    tables = ensure_tables(open_catalog(settings), settings.table)[0]
    ledger_id = tables.ingested.name()
    stale = open_catalog(settings).load_table(ledger_id)
    other = open_catalog(settings).load_table(ledger_id)
    first_rows = pa.Table.from_pylist(
        [
            {
                "source": "file:///z/a",
                "size": 1,
                "records": 1,
                "batch_key": "k",
                "ingested_at": datetime.now(UTC),
            }
        ],
        schema=other.schema().as_arrow(),
    )
    commit.append_with_key(other, first_rows, key="k", kind=summary.KIND_INGESTED)
    real_refresh = stale.refresh
    calls = []

    def refresh_once_late():  # the first look-up sees the old head, retries the new one
        calls.append(1)
        return stale if len(calls) == 1 else real_refresh()

    monkeypatch.setattr(stale, "refresh", refresh_once_late)
    commit.append_with_key(stale, first_rows, key="k", kind=summary.KIND_INGESTED)
    assert len(calls) >= 2  # it did go on to commit, lost, and looked again
    other.refresh()
    assert other.scan().to_arrow().column("source").to_pylist() == ["file:///z/a"]
    assert _keyed(other)["k"] == 1


def test_the_requirement_looks_only_at_snapshots_after_the_look_up(settings: Settings) -> None:
    with EventWriter(settings) as writer:
        writer.write([event(i, minutes=i) for i in range(3)])
    table = open_catalog(settings).load_table(settings.table.identifier)
    batch = _batch(settings, range(3, 6))
    commit.commit_events(table, batch, batch.slice(0, 0), key="k", late_hours=[], writer="b")
    table.refresh()
    keyed = table.metadata.current_snapshot_id
    AssertNoBatchKey(key="k", checked_at=keyed).validate(table.metadata)  # nothing newer
    AssertNoBatchKey(key="other", checked_at=None).validate(table.metadata)
    with pytest.raises(BatchKeyLanded, match="batch k"):
        AssertNoBatchKey(key="k", checked_at=None).validate(table.metadata)
    parent = table.metadata.snapshot_by_id(keyed).parent_snapshot_id
    with pytest.raises(BatchKeyLanded):
        AssertNoBatchKey(key="k", checked_at=parent).validate(table.metadata)
