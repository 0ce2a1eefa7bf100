"""The contract with ``writers.EventWriter``: what it commits is what maintenance plans
on (on-time and late snapshots, files declaring the sort order), and compaction of its
micro-batches ends in one sorted file per closed hour."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from pyiceberg.table import Table

from lakehouse.settings import Settings
from maintenance import compact, plan_compaction, take_inventory
from tests.maintenance.assertions import assert_compacted
from tests.maintenance.builders import Fed, make_rows

writers = pytest.importorskip("writers")


def test_compaction_of_writer_micro_batches(
    sqlite_settings: Settings, sqlite_events: Table
) -> None:
    clock_now = datetime(2024, 5, 1, 6, 30, tzinfo=UTC)
    fed = Fed()
    rng = random.Random(21)
    with writers.EventWriter(sqlite_settings, clock=lambda: clock_now) as writer:
        for b in range(6):  # on-time micro-batches into the current hour
            rows = make_rows(rng, 20, datetime(2024, 5, 1, 6, tzinfo=UTC), f"on{b}")
            rows = [
                {
                    **r,
                    "client_ts": min(r["client_ts"], clock_now - timedelta(seconds=1)),
                    "server_ts": clock_now,
                }  # type: ignore[type-var]
                for r in rows
            ]
            writer.write(rows)
            writer.flush()
            fed.rows += rows
        for b in range(4):  # late micro-batches into hours 1 and 2
            rows = make_rows(rng, 10, datetime(2024, 5, 1, 1 + b % 2, tzinfo=UTC), f"late{b}")
            rows = [
                {**r, "server_ts": clock_now} for r in rows
            ]  # received now: hours 1-2 are closed
            writer.write(rows)
            writer.flush()
            fed.rows += rows
    sqlite_events.refresh()
    inventory = take_inventory(sqlite_events)
    files = [f for h in inventory.hours for f in h.files]
    assert all(f.declared_sorted and not f.compacted for f in files)
    assert {f.added_kind for f in files} == {"on-time", "late"}
    assert all(f.late == (f.added_kind == "late") for f in files)
    plan = plan_compaction(sqlite_events, now=clock_now + timedelta(hours=3))
    assert {g.start.hour: g.reasons for g in plan.groups} == {
        1: ("small-files", "late-data"),
        2: ("small-files", "late-data"),
        6: ("small-files",),
    }
    compact(sqlite_events, plan=plan)
    assert_compacted(sqlite_events, fed)
