"""Errors raised by maintenance, rooted in :mod:`lakehouse.errors`."""

from __future__ import annotations

from lakehouse.errors import ConfigError, LakehouseError, RetryableError, TerminalError


class MaintenanceError(LakehouseError):
    """Root of the errors maintenance raises on purpose."""


class RewriteConflictError(MaintenanceError, RetryableError):
    """A rewrite group lost to a concurrent change of its files (another compactor, a delete).

    Nothing of the group was committed; its input files are untouched. Re-planning from
    the new table state is the fix, which :func:`maintenance.compact` does once by itself.
    """


class LeaseHeldError(MaintenanceError, RetryableError):
    """Another scheduler holds the table's maintenance lease; try again after it expires."""


class LeaseLostError(MaintenanceError, TerminalError):
    """Our lease was taken over (it expired while we worked); stop touching the table."""


class LeaseUnsupportedError(MaintenanceError, ConfigError):
    """The catalog cannot compare-and-set a table property (a REST catalog validates
    commit requirements on the server, which does not know ours)."""
