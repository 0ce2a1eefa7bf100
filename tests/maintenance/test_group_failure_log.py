"""A compaction group that fails is logged in one line when the failure is one of the
project's own errors (an unreachable catalog, say), with a traceback only when it is not:
the same rule as the job runner, so `maintain serve` beside a restarting catalog prints
no Python traceback."""

from __future__ import annotations

import importlib
import logging

import pytest
from pyiceberg.table import Table

from lakehouse.errors import CatalogUnavailable
from maintenance.compact import compact
from tests.maintenance.builders import Fed


@pytest.mark.parametrize(
    ("error", "traceback"),
    [(CatalogUnavailable("catalog 'x' is unreachable"), False), (KeyError("boom"), True)],
)
def test_failed_group_logs_a_traceback_only_for_unexpected_errors(
    sqlite_fed: tuple[Table, Fed],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    error: Exception,
    traceback: bool,
) -> None:
    table, _ = sqlite_fed

    def fail(*_: object, **__: object) -> None:
        raise error

    monkeypatch.setattr(importlib.import_module("maintenance.compact"), "commit_rewrite", fail)
    before = table.current_snapshot()
    with caplog.at_level(logging.ERROR, logger="maintenance.compact"):
        result = compact(table)
    table.refresh()
    assert result.groups_failed > 0
    assert table.current_snapshot() == before  # nothing committed
    failed = [r for r in caplog.records if "failed" in r.getMessage()]
    assert failed  # each failed commit (of one or more groups) is logged
    assert all(bool(r.exc_info) is traceback for r in failed)
