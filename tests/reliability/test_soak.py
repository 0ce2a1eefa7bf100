"""Concurrency soak, short mode: writers, the maintenance loop and a reader checking the
invariants on every new head (see tests/reliability/soak.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability.harness import SUMMARIES, sqlite_target
from tests.reliability.soak import soak

pytestmark = pytest.mark.slow


def test_writers_maintenance_and_reader_keep_every_invariant(home: Path, tmp_path: Path) -> None:
    figures = soak(
        sqlite_target(tmp_path / "home"), tmp_path, seconds=40, writers=3, retention="20s"
    )
    SUMMARIES.append(figures.summary("soak (sqlite)"))
    assert figures.ok, figures.violations
    assert figures.reader_checks >= 5 and figures.commits >= 10
