"""Fixtures: an events table on each catalog (through the shared ``settings`` fixture),
empty or fed with fragmented data."""

from __future__ import annotations

import pytest
from pyiceberg.table import Table

from catalog import open_catalog
from lakehouse.settings import Settings
from lakehouse.tables import ensure_tables
from tests.maintenance.builders import Fed, feed


@pytest.fixture
def events(settings: Settings) -> Table:
    """An empty events table, on SQLite and on PostgreSQL."""
    return ensure_tables(open_catalog(settings), settings.table)[0].events


@pytest.fixture
def sqlite_events(sqlite_settings: Settings) -> Table:
    return ensure_tables(open_catalog(sqlite_settings), sqlite_settings.table)[0].events


@pytest.fixture
def fed(events: Table) -> tuple[Table, Fed]:
    """The events table after many small on-time and late batches, resends and unsorted files."""
    return events, feed(events)


@pytest.fixture
def sqlite_fed(sqlite_events: Table) -> tuple[Table, Fed]:
    return sqlite_events, feed(sqlite_events)
