"""The in-process engine's maintenance capability: :func:`maintenance.run_maintenance` on
the settings' events table (the ``python`` engine of :mod:`lakehouse.engines`)."""

from __future__ import annotations

from collections.abc import Callable

from lakehouse.settings import Settings
from maintenance.jobs import MaintenanceOptions
from maintenance.progress import ProgressReporter
from maintenance.results import RunResult
from maintenance.runner import run_maintenance


def maintain_in_process(
    settings: Settings,
    options: MaintenanceOptions,
    *,
    reporter: ProgressReporter | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> RunResult:
    """Run the maintenance jobs in this process on the settings' events table."""
    from catalog import open_catalog
    from lakehouse.tables import load_tables

    table = load_tables(open_catalog(settings), settings.table).events
    return run_maintenance(table, options, reporter=reporter, should_stop=should_stop)
