"""Catalog faults, short mode: commit-conflict storms of writer processes on one table,
and the PostgreSQL catalog restarted under writers, maintenance and ingest."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability.faults import catalog_restarts, conflict_storm
from tests.reliability.harness import SUMMARIES, postgres_target, sqlite_target
from tests.support.postgres import PostgresServer

pytestmark = pytest.mark.slow


def test_conflict_storm_on_sqlite(home: Path, tmp_path: Path) -> None:
    figures = conflict_storm(sqlite_target(tmp_path / "home"), tmp_path, writers=4, batches=5)
    SUMMARIES.append(figures.summary("storm (sqlite)"))
    assert figures.ok, figures.violations
    assert figures.commits == 20


@pytest.mark.postgres
def test_conflict_storm_on_postgres(
    home: Path, tmp_path: Path, postgres_server: PostgresServer
) -> None:
    target = postgres_target(postgres_server, tmp_path / "home", f"storm_{tmp_path.name[-8:]}")
    figures = conflict_storm(target, tmp_path, writers=5, batches=4)
    SUMMARIES.append(figures.summary("storm (postgres)"))
    assert figures.ok, figures.violations
    assert figures.commits == 20


@pytest.mark.postgres
def test_postgres_restarts_lose_and_double_nothing(
    home: Path, tmp_path: Path, private_postgres: PostgresServer
) -> None:
    target = postgres_target(private_postgres, tmp_path / "home", "restarts")
    figures = catalog_restarts(private_postgres, target, tmp_path, seconds=25, writers=2, seed=7)
    SUMMARIES.append(figures.summary("postgres restarts"))
    assert figures.ok, figures.violations
    assert figures.catalog_restarts >= 2
