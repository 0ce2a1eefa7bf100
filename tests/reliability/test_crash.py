"""Crash campaign, short mode: SIGKILL ingest and maintenance at random moments, re-run,
and every event is in the table exactly once (see tests/reliability/crash.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability.crash import crash_campaign
from tests.reliability.harness import SUMMARIES, postgres_target, sqlite_target
from tests.support.postgres import PostgresServer

pytestmark = pytest.mark.slow
SHORT = {"steps": (3, 4), "files_per_wave": 6, "per_file": 150, "waves": 2, "hours": 4}


def test_sigkilled_ingest_and_maintenance_lose_and_double_nothing_sqlite(
    home: Path, tmp_path: Path
) -> None:
    figures = crash_campaign([101], tmp_path, lambda seed, root: sqlite_target(root), **SHORT)  # type: ignore[arg-type]
    SUMMARIES.append(figures.summary("crash (sqlite)"))
    assert figures.ok, figures.violations
    assert figures.kills >= 1 and figures.events > 500
    assert figures.kills_in_commit_window >= 1, figures.notes


@pytest.mark.postgres
def test_sigkilled_ingest_and_maintenance_lose_and_double_nothing_postgres(
    home: Path, tmp_path: Path, postgres_server: PostgresServer
) -> None:
    figures = crash_campaign(
        [202],
        tmp_path,
        lambda seed, root: postgres_target(
            postgres_server, root, f"crash_{seed}_{tmp_path.name[-8:]}"
        ),
        **SHORT,  # type: ignore[arg-type]
    )
    SUMMARIES.append(figures.summary("crash (postgres)"))
    assert figures.ok, figures.violations
    assert figures.kills_in_commit_window >= 1, figures.notes
