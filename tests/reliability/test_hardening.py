"""Hardening cases, short mode (see hardening.py): orphan window, password forms,
companion names, column explosion."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability import hardening
from tests.reliability.harness import SUMMARIES, Figures, sqlite_target
from tests.support.postgres import PostgresServer

pytestmark = pytest.mark.slow


def test_orphan_window_companion_names_and_column_explosion(home: Path, tmp_path: Path) -> None:
    figures = Figures()
    target = sqlite_target(tmp_path / "home")
    hardening.check_orphan_window(target, tmp_path, figures)
    hardening.check_companion_names(target, tmp_path, figures)
    hardening.check_column_explosion(target, tmp_path, figures)
    SUMMARIES.append(figures.summary("hardening"))
    assert figures.ok, figures.violations
    assert figures.hostile_cases >= 19


@pytest.mark.postgres
def test_password_forms_never_printed(
    home: Path, tmp_path: Path, postgres_server: PostgresServer
) -> None:
    figures = Figures()
    hardening.check_password_forms(postgres_server, tmp_path, figures)
    SUMMARIES.append(figures.summary("password forms"))
    assert figures.ok, figures.violations
    assert figures.hostile_cases == 5 * len(hardening.PASSWORD_FORMS)
