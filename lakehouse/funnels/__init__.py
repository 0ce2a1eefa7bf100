"""Funnels: how many users go through a sequence of steps, in order, within a window.

* :func:`funnel` — the Polars engine over any LazyFrame of events (window or strict mode,
  conversion, median time to convert, breakdown), returning a :class:`FunnelResult`;
* :func:`user_levels` — the furthest step per user (ClickHouse ``windowFunnel`` values);
* :func:`funnel_sql` — the window mode as Trino/Athena SQL with bound parameters;
* :data:`ENGINES` / :func:`run_funnel` — engines by name for the CLI (``polars``; others
  register themselves, see :mod:`lakehouse.funnels.engines`).
"""

from lakehouse.funnels.collect import user_levels
from lakehouse.funnels.compute import funnel
from lakehouse.funnels.engines import ENGINES, FunnelRequest, register_engine, run_funnel
from lakehouse.funnels.result import FunnelGroup, FunnelResult, FunnelStep
from lakehouse.funnels.spec import MODES, FunnelSpec, Mode, funnel_spec
from lakehouse.funnels.sql import funnel_sql

__all__ = [
    "ENGINES",
    "MODES",
    "FunnelGroup",
    "FunnelRequest",
    "FunnelResult",
    "FunnelSpec",
    "FunnelStep",
    "Mode",
    "funnel",
    "funnel_spec",
    "funnel_sql",
    "register_engine",
    "run_funnel",
    "user_levels",
]
