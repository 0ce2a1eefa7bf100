"""An event lakehouse on Apache Iceberg.

The read API and the funnel engine are importable from here (``from lakehouse import
events, funnel``). Names are resolved on first use, so ``import lakehouse`` stays cheap:
nothing heavy (pyiceberg, polars, pyarrow) is imported until a name is used.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__all__ = [
    "ORDERED_VIEW_COLUMNS",
    "ORDERED_VIEW_SQL",
    "FunnelResult",
    "FunnelStep",
    "TableHealthFrames",
    "current_snapshot_id",
    "events",
    "funnel",
    "funnel_sql",
    "late_share",
    "late_share_frame",
    "lateness",
    "lateness_frame",
    "open_events_table",
    "ordered",
    "ordered_view_sql",
    "rejected",
    "snapshots",
    "sql",
    "table_health_frames",
    "user_levels",
    "with_order",
]

_FUNNEL_NAMES = frozenset({"FunnelResult", "FunnelStep", "funnel", "funnel_sql", "user_levels"})

if TYPE_CHECKING:
    from lakehouse.engines.duckdb import sql
    from lakehouse.funnels import FunnelResult, FunnelStep, funnel, funnel_sql, user_levels
    from lakehouse.read import (
        ORDERED_VIEW_COLUMNS,
        ORDERED_VIEW_SQL,
        TableHealthFrames,
        current_snapshot_id,
        events,
        late_share,
        lateness,
        ordered,
        ordered_view_sql,
        rejected,
        snapshots,
        table_health_frames,
        with_order,
    )


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'lakehouse' has no attribute {name!r}")
    module = "lakehouse.funnels" if name in _FUNNEL_NAMES else "lakehouse.read"
    if name == "sql":
        module = "lakehouse.engines.duckdb"
    value = getattr(import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
