"""Athena: run SQL with boto3, the ordered view, the funnel engine, maintenance.

* :func:`run_query` / :class:`AthenaClient` — start, poll with backoff, page through the
  results into typed Arrow/Polars (:class:`AthenaResult`); throttling retried;
  ``FAILED``/``CANCELLED`` raise with Athena's reason;
* :class:`AthenaConfig` — ``LAKEHOUSE_ATHENA_*`` settings, read when called;
* :mod:`~lakehouse.engines.athena.sql` — every SQL text sent to Athena (each also runs on Trino
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
    "AthenaClient": "lakehouse.engines.athena.client",
    "Backoff": "lakehouse.engines.athena.client",
    "run_query": "lakehouse.engines.athena.client",
    "AthenaConfig": "lakehouse.engines.athena.config",
    "AthenaConfigError": "lakehouse.engines.athena.errors",
    "AthenaError": "lakehouse.engines.athena.errors",
    "AthenaQueryCancelledError": "lakehouse.engines.athena.errors",
    "AthenaQueryError": "lakehouse.engines.athena.errors",
    "AthenaQueryFailedError": "lakehouse.engines.athena.errors",
    "AthenaThrottledError": "lakehouse.engines.athena.errors",
    "AthenaTimeoutError": "lakehouse.engines.athena.errors",
    "AthenaResult": "lakehouse.engines.athena.results",
    "QueryExecution": "lakehouse.engines.athena.results",
    "QueryStats": "lakehouse.engines.athena.results",
    "ViewResult": "lakehouse.engines.athena.views",
    "create_ordered_view": "lakehouse.engines.athena.views",
    "run_athena": "lakehouse.engines.athena.funnel",
    "compact_with_athena": "lakehouse.engines.athena.maintenance",
    "run_maintenance_with_athena": "lakehouse.engines.athena.maintenance",
    "vacuum_with_athena": "lakehouse.engines.athena.maintenance",
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
    from lakehouse.engines.athena.client import AthenaClient, Backoff, run_query
    from lakehouse.engines.athena.config import AthenaConfig
    from lakehouse.engines.athena.errors import (
        AthenaConfigError,
        AthenaError,
        AthenaQueryCancelledError,
        AthenaQueryError,
        AthenaQueryFailedError,
        AthenaThrottledError,
        AthenaTimeoutError,
    )
    from lakehouse.engines.athena.funnel import run_athena
    from lakehouse.engines.athena.maintenance import (
        compact_with_athena,
        run_maintenance_with_athena,
        vacuum_with_athena,
    )
    from lakehouse.engines.athena.results import AthenaResult, QueryExecution, QueryStats
    from lakehouse.engines.athena.views import ViewResult, create_ordered_view


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lakehouse.engines.athena' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
