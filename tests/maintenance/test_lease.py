"""The per-table maintenance lease: exclusive, expiring, taken over, kept in the catalog."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta

import pytest
from pyiceberg.table import Table

from catalog import open_catalog
from lakehouse.settings import Settings
from maintenance import (
    LEASE_PROPERTY,
    LeaseHeldError,
    LeaseLostError,
    LeaseUnsupportedError,
    MaintenanceOptions,
    TableLease,
    read_lease,
    run_maintenance,
)
from maintenance.lease import compare_and_set
from tests.maintenance.builders import Fed, append, make_rows


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2030, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def _handle(settings: Settings) -> Table:
    return open_catalog(settings).load_table(settings.table.identifier)


def test_lease_is_exclusive_expires_and_is_taken_over(settings: Settings, events: Table) -> None:
    clock = Clock()
    first = TableLease(_handle(settings), owner="a", ttl=timedelta(minutes=10), clock=clock)
    second = TableLease(_handle(settings), owner="b", ttl=timedelta(minutes=10), clock=clock)
    lease = first.acquire()
    assert read_lease(_handle(settings)) == lease
    with pytest.raises(LeaseHeldError, match="held by a"):
        second.acquire()
    clock.now += timedelta(minutes=6)
    assert first.renew_if_due()  # less than half left: renewed
    clock.now += timedelta(minutes=9)
    with pytest.raises(LeaseHeldError):
        second.acquire()  # renewed, so still held
    clock.now += timedelta(minutes=2)  # expired now
    taken = second.acquire()
    assert taken.owner == "b" and second.took_over is not None and second.took_over.owner == "a"
    with pytest.raises(LeaseLostError):
        first.renew()
    assert not first.release()  # no longer ours: leaves b's lease alone
    assert read_lease(_handle(settings)) == taken
    assert second.release({"lakehouse.maintenance.last-run": "{}"})
    handle = _handle(settings)
    assert LEASE_PROPERTY not in handle.properties
    assert handle.properties["lakehouse.maintenance.last-run"] == "{}"


def test_exactly_one_of_many_racing_schedulers_wins(settings: Settings, events: Table) -> None:
    barrier = threading.Barrier(5)
    outcomes: list[str] = []

    def contender(i: int) -> None:
        lease = TableLease(_handle(settings), owner=f"s{i}", attempts=20)
        barrier.wait()
        try:
            lease.acquire()
            outcomes.append("won")
        except LeaseHeldError:
            outcomes.append("held")

    threads = [threading.Thread(target=contender, args=(i,)) for i in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["held"] * 4 + ["won"]


def test_lease_survives_writer_commits(sqlite_settings: Settings, sqlite_events: Table) -> None:
    lease = TableLease(_handle(sqlite_settings), owner="m")
    held = lease.acquire()
    writer = _handle(sqlite_settings)
    for i in range(3):
        append(writer, make_rows(random.Random(i), 5, datetime(2024, 5, 1, tzinfo=UTC), f"x{i}"))
    assert read_lease(_handle(sqlite_settings)) == held
    assert lease.renew().token == held.token
    assert lease.release()


def test_a_held_lease_skips_the_run(
    sqlite_settings: Settings, sqlite_fed: tuple[Table, Fed]
) -> None:
    table, _ = sqlite_fed
    TableLease(_handle(sqlite_settings), owner="other").acquire()
    before = table.refresh().metadata_location
    result = run_maintenance(table, MaintenanceOptions())
    assert result.skipped_reason and "held by other" in result.skipped_reason
    assert result.ok and result.compaction is None
    table.refresh()
    assert table.metadata_location == before


def test_rest_catalogs_are_refused_clearly() -> None:
    from pyiceberg.catalog.rest import RestCatalog

    class Stub:
        catalog = RestCatalog.__new__(RestCatalog)

    with pytest.raises(LeaseUnsupportedError, match="--no-lease"):
        compare_and_set(Stub(), LEASE_PROPERTY, None, set_properties={LEASE_PROPERTY: "x"})  # type: ignore[arg-type]
