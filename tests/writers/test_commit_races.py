"""A writer's commit while maintenance expires the snapshot it started from."""

from __future__ import annotations

from pathlib import Path

from catalog import open_catalog
from lakehouse.settings import Settings
from lakehouse.tables import ensure_tables
from tests.writers.events import event, rows
from writers import EventWriter, commit
from writers.dedupe import sort_and_dedupe
from writers.normalize import normalize
from writers.parse import parse_records


def _batch(settings: Settings, numbers: range):
    events = ensure_tables(open_catalog(settings), settings.table)[0].events
    from datetime import UTC, datetime, timedelta

    chunk = parse_records([event(i, minutes=i) for i in numbers], "batch:t").chunks[0]
    table = normalize(
        chunk.table, receipt_time=datetime.now(UTC), max_future_skew=timedelta(hours=1)
    ).table.drop_columns(["__row"])
    batch, _ = sort_and_dedupe(table.cast(events.schema().as_arrow()))
    return batch


def test_a_commit_whose_base_was_expired_meanwhile_lands_once(settings: Settings) -> None:
    with EventWriter(settings) as writer:
        writer.write([event(i, minutes=i) for i in range(10)])
    stale = open_catalog(settings).load_table(settings.table.identifier)  # starts at S1
    other = open_catalog(settings).load_table(settings.table.identifier)
    second = _batch(settings, range(10, 20))
    commit.commit_events(other, second, second.slice(0, 0), key="k2", late_hours=[], writer="b")
    other.refresh()
    first = other.metadata.snapshots[0].snapshot_id
    other.maintenance.expire_snapshots().by_ids([first]).commit()  # S1 is gone

    third = _batch(settings, range(20, 30))
    ids = commit.commit_events(stale, third, third.slice(0, 0), key="k3", late_hours=[], writer="a")
    assert len(ids) == 1
    stale.refresh()
    got = sorted(rows(stale).column("event_id").to_pylist())
    assert got == [f"e{i:06d}" for i in range(30)]
    # the files written for the attempt that could not be rebuilt were deleted
    referenced = {t.file.file_path.removeprefix("file://") for t in stale.scan().plan_files()}
    on_disk = {str(p) for p in Path(stale.location().removeprefix("file://")).rglob("*.parquet")}
    assert on_disk == referenced
