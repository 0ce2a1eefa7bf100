"""Shared fixtures. The same behaviour tests run against every catalog through the
parametrised ``settings`` fixture: the embedded SQLite catalog and a real PostgreSQL."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from lakehouse.settings import Settings
from tests.support.components import unavailable
from tests.support.postgres import PostgresServer, PostgresUnavailable, running_postgres

_db_counter = itertools.count()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    try:
        with running_postgres() as server:
            yield server
    except PostgresUnavailable as exc:
        unavailable("PostgreSQL", str(exc))


def postgres_catalog_env(
    server: PostgresServer, home: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    """Configure a fresh pyiceberg SQL catalog named ``pg`` on its own database."""
    url = server.create_database(f"lakehouse_{next(_db_counter)}")
    monkeypatch.setenv("PYICEBERG_CATALOG__PG__TYPE", "sql")
    monkeypatch.setenv("PYICEBERG_CATALOG__PG__URI", url)
    monkeypatch.setenv("PYICEBERG_CATALOG__PG__WAREHOUSE", (home / "warehouse").as_uri())
    monkeypatch.setenv("PYICEBERG_CATALOG__PG__INIT_CATALOG_TABLES", "true")
    return "pg"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated LAKEHOUSE_HOME; no ambient LAKEHOUSE_* setting leaks into a test."""
    import os

    for key in list(os.environ):
        if key.startswith(("LAKEHOUSE_", "PYICEBERG_")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("LAKEHOUSE_HOME", str(tmp_path / "lh"))
    monkeypatch.chdir(tmp_path)
    return tmp_path / "lh"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def settings(
    request: pytest.FixtureRequest, home: Path, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """Settings on the embedded SQLite catalog, then on a real PostgreSQL catalog."""
    if request.param == "postgres":
        server = request.getfixturevalue("postgres_server")
        name = postgres_catalog_env(server, home, monkeypatch)
        monkeypatch.setenv("LAKEHOUSE_CATALOG", name)
        return Settings.from_env()
    return Settings.from_env()


@pytest.fixture
def sqlite_settings(home: Path) -> Settings:
    return Settings.from_env()
