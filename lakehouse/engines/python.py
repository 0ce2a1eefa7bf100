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
    from lakehouse.tables import open_events_table

    table = open_events_table(settings)
    return run_maintenance(table, options, reporter=reporter, should_stop=should_stop)
