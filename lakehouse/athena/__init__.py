"""Athena: run SQL with boto3, the ordered view, the funnel engine, maintenance.

* :func:`run_query` / :class:`AthenaClient` — start, poll with backoff, page through the
  results into typed Arrow/Polars (:class:`AthenaResult`); throttling retried;
  ``FAILED``/``CANCELLED`` raise with Athena's reason;
* :class:`AthenaConfig` — ``LAKEHOUSE_ATHENA_*`` settings, read when called;
* :mod:`~lakehouse.athena.sql` — every SQL text sent to Athena (each also runs on Trino
  in the tests);
* :func:`create_ordered_view` — ``<table>_ordered`` as an Athena view;
* :func:`run_athena` — the ``athena`` funnel engine (:mod:`lakehouse.funnels.engines`);
* :func:`run_maintenance_with_athena` — the maintenance plan as ``OPTIMIZE``/``VACUUM``.

Heavy modules (boto3, pyarrow, pyiceberg) load only when used.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "AthenaClient": "lakehouse.athena.client",
    "Backoff": "lakehouse.athena.client",
    "run_query": "lakehouse.athena.client",
    "AthenaConfig": "lakehouse.athena.config",
    "AthenaConfigError": "lakehouse.athena.errors",
    "AthenaError": "lakehouse.athena.errors",
    "AthenaQueryCancelledError": "lakehouse.athena.errors",
    "AthenaQueryError": "lakehouse.athena.errors",
    "AthenaQueryFailedError": "lakehouse.athena.errors",
    "AthenaThrottledError": "lakehouse.athena.errors",
    "AthenaTimeoutError": "lakehouse.athena.errors",
    "AthenaResult": "lakehouse.athena.results",
    "QueryExecution": "lakehouse.athena.results",
    "QueryStats": "lakehouse.athena.results",
    "ViewResult": "lakehouse.athena.views",
    "create_ordered_view": "lakehouse.athena.views",
    "run_athena": "lakehouse.athena.funnel",
    "compact_with_athena": "lakehouse.athena.maintenance",
    "run_maintenance_with_athena": "lakehouse.athena.maintenance",
    "vacuum_with_athena": "lakehouse.athena.maintenance",
}
__all__ = [
    "AthenaClient",
    "AthenaConfig",
    "AthenaConfigError",
    "AthenaError",
    "AthenaQueryCancelledError",
    "AthenaQueryError",
    "AthenaQueryFailedError",
    "AthenaResult",
    "AthenaThrottledError",
    "AthenaTimeoutError",
    "Backoff",
    "QueryExecution",
    "QueryStats",
    "ViewResult",
    "compact_with_athena",
    "create_ordered_view",
    "run_athena",
    "run_maintenance_with_athena",
    "run_query",
    "vacuum_with_athena",
]

if TYPE_CHECKING:
    from lakehouse.athena.client import AthenaClient, Backoff, run_query
    from lakehouse.athena.config import AthenaConfig
    from lakehouse.athena.errors import (
        AthenaConfigError,
        AthenaError,
        AthenaQueryCancelledError,
        AthenaQueryError,
        AthenaQueryFailedError,
        AthenaThrottledError,
        AthenaTimeoutError,
    )
    from lakehouse.athena.funnel import run_athena
    from lakehouse.athena.maintenance import (
        compact_with_athena,
        run_maintenance_with_athena,
        vacuum_with_athena,
    )
    from lakehouse.athena.results import AthenaResult, QueryExecution, QueryStats
    from lakehouse.athena.views import ViewResult, create_ordered_view


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lakehouse.athena' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
