"""The batch-key index (writers.commit.snapshots_with_key) follows the table across
refreshes, other writers' commits and expiry; checked against the summaries themselves."""

from __future__ import annotations

from pyiceberg.table import Table

from catalog import open_catalog
from lakehouse import schema as spec
from lakehouse.settings import Settings
from lakehouse.tables import load_tables
from tests.writers.events import event, rows
from writers import EventWriter, commit


def _oracle(table: Table, key: str) -> list[int]:
    """Ids of the retained snapshots whose summary names ``key``, in list (commit) order."""
    return [
        s.snapshot_id
        for s in table.metadata.snapshots
        if s.summary is not None
        and s.summary.additional_properties.get(spec.SUMMARY_BATCH_KEY) == key
    ]


def test_keys_are_found_across_refreshes_other_writers_and_expiry(settings: Settings) -> None:
    first = EventWriter(settings)
    other = EventWriter(settings, catalog=open_catalog(settings))  # its own catalog and table
    keys: list[str] = []
    for k in range(30):
        writer = first if k % 3 else other
        writer.write([event(k * 10 + j) for j in range(10)], batch_id=f"batch-{k}")
        keys.extend(writer.flush().batch_keys)
    events = load_tables(open_catalog(settings), settings.table).events
    events.refresh()
    assert len(events.metadata.snapshots) == 30
    for key in keys:
        found = commit.snapshots_with_key(events, key)
        assert found == _oracle(events, key) and len(found) == 1
    assert commit.snapshots_with_key(events, "no-such-key") == []

    # a batch the other writer committed is recognised by the first: nothing written twice
    first.write([event(j) for j in range(10)], batch_id="batch-0")
    again = first.flush()
    assert again.already_committed == 1 and again.records_written == 0
    assert rows(events).num_rows == 300

    # expiry of the ten oldest: their keys are gone, the others still found
    expired = [s.snapshot_id for s in events.metadata.snapshots[:10]]
    events.maintenance.expire_snapshots().by_ids(expired).commit()
    events.refresh()
    for k, key in enumerate(keys):
        assert commit.snapshots_with_key(events, key) == _oracle(events, key)
        assert bool(commit.snapshots_with_key(events, key)) == (k >= 10)

    # and new commits after the expiry are indexed too
    first.write([event(1000 + j) for j in range(5)], batch_id="batch-new")
    (new_key,) = first.flush().batch_keys
    events.refresh()
    assert commit.snapshots_with_key(events, new_key) == _oracle(events, new_key) != []


def test_a_lookup_reads_only_the_new_snapshots(settings: Settings) -> None:
    writer = EventWriter(settings)
    for k in range(20):
        writer.write([event(k * 5 + j) for j in range(5)], batch_id=f"b{k}")
        writer.flush()
    events = writer.tables.events
    index = commit._KEYS[events.metadata.table_uuid.hex]
    passes = index.full_passes
    for k in range(20, 30):
        writer.write([event(k * 5 + j) for j in range(5)], batch_id=f"b{k}")
        (key,) = writer.flush().batch_keys
        assert commit.snapshots_with_key(events, key) == _oracle(events, key)
    assert index.full_passes == passes  # appends never needed a whole-list pass
