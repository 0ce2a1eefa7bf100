"""A pytest plugin for ``./dev mutation``: a mutant's tests run fastest first.

mutmut hands pytest the tests that call the mutated function (a set, in no useful
order) with ``-x``, and records each test's duration in ``mutmut-stats.json`` (in
the directory the tests run from). A killed mutant costs the tests run up to the first
failure, so the quick ones go first; a survivor runs all of them whatever the order.
The tests themselves and what they assert are unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    stats = Path("mutmut-stats.json")
    if not stats.is_file():  # mutmut's first run, the one that records the durations
        return
    durations: dict[str, float] = json.loads(stats.read_text()).get("duration_by_test", {})
    items.sort(key=lambda item: durations.get(item.nodeid.removeprefix("mutants/"), 0.0))
