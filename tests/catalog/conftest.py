"""Fixtures: an empty events table on the embedded SQLite catalog."""

from __future__ import annotations

import pytest
from pyiceberg.table import Table

from catalog import open_catalog
from lakehouse.settings import Settings
from lakehouse.tables import ensure_tables


@pytest.fixture
def sqlite_events(sqlite_settings: Settings) -> Table:
    return ensure_tables(open_catalog(sqlite_settings), sqlite_settings.table)[0].events
