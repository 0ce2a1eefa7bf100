"""Bad-input fuzzing, short mode: generated NDJSON files and Python records; every line
committed or rejected with a reason, counts reconcile, nothing raises (see fuzz.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability.fuzz import fuzz
from tests.reliability.harness import SUMMARIES, sqlite_target

pytestmark = pytest.mark.slow


def test_fuzzed_landing_files_and_records_are_all_accounted_for(home: Path, tmp_path: Path) -> None:
    figures = fuzz(
        sqlite_target(tmp_path / "home"), tmp_path, examples=40, record_examples=25, seed=2024
    )
    SUMMARIES.append(figures.summary("fuzz"))
    assert figures.ok, figures.violations
    assert figures.fuzz_cases >= 60
