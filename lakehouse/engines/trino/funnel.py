"""The ``trino`` funnel engine: the whole funnel computed by Trino in one SQL query.

The query is :func:`lakehouse.funnels.query.funnel_query` in Trino's dialect, the one
the ``duckdb`` and ``athena`` engines run too: the Polars engine's semantics (ClickHouse's
``windowFunnel(window)`` in window mode), strict mode, a breakdown, exclusion steps, a
held column and per-step windows, with the median time to each step, so a
:class:`FunnelResult` from Trino has every field the Polars one has. The events table is
pinned to one snapshot with ``FOR VERSION AS OF``.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from lakehouse.engines.trino.client import connect, query
from lakehouse.engines.trino.sql import table_ref
from lakehouse.funnels.engines import FunnelRequest, register_engine
from lakehouse.funnels.query import funnel_query as shared_query
from lakehouse.funnels.query import result_parts
from lakehouse.funnels.result import FunnelResult
from lakehouse.funnels.spec import FunnelSpec
from lakehouse.settings import Settings

log = logging.getLogger(__name__)

ENGINE_NAME = "trino"
_RESET = -1  # "no open chain" in strict mode: below every timestamp (events are after 2000)
_TS_US = "CAST(round(to_unixtime(e.client_ts) * 1000000) AS BIGINT)"
_ROWS = "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW"


def funnel_query(
    spec: FunnelSpec,
    table: str,
    columns: tuple[str, ...],
    *,
    start: Any = None,
    end: Any = None,
) -> tuple[str, list[Any]]:
    """SQL and parameters of the funnel over ``table`` (a quoted reference), in Trino's
    dialect: :func:`lakehouse.funnels.query.funnel_query`."""
    return shared_query(spec, table, columns, start=start, end=end, dialect="trino")


def run_trino(
    settings: Settings, request: FunnelRequest, *, port: int | None = None
) -> FunnelResult:
    """The funnel of ``request`` computed by the local Trino (``port``, default
    ``LAKEHOUSE_TRINO_PORT`` or 8080) at the request's snapshot, by default the table's
    current one, pinned with ``FOR VERSION AS OF`` and reported in the result."""
    from lakehouse.read.source import check_range, check_snapshot, open_events_table

    spec = request.spec
    start, end = check_range(request.start, request.end)
    table = open_events_table(settings)
    snapshot_id = check_snapshot(table, request.snapshot_id)
    if snapshot_id is None:
        snapshot_id = table.metadata.current_snapshot_id
    columns = tuple(f.name for f in table.schema().fields)
    began = time.perf_counter()
    rows: list[tuple[Any, ...]] = []
    if snapshot_id is not None:  # an empty table has no snapshot to read
        sql, params = funnel_query(
            spec,
            table_ref(settings, snapshot_id=snapshot_id),
            columns,
            start=start,
            end=end,
        )
        conn = connect(settings, port)
        try:
            rows = list(query(sql, params, connection=conn).rows)
        finally:
            conn.close()  # type: ignore[no-untyped-call]
    overall, groups = result_parts(rows, spec)
    log.info(
        "trino funnel of %d steps (%s) at snapshot %s in %.2f s",
        len(spec.steps),
        spec.mode,
        snapshot_id,
        time.perf_counter() - began,
    )
    return FunnelResult.of(spec, overall, groups, engine=ENGINE_NAME, snapshot_id=snapshot_id)


def register() -> None:
    """Make ``trino`` a funnel engine of :func:`lakehouse.funnels.run_funnel` (the CLI's
    ``--engine`` choices are fixed when it is built: there, ENGINES names this module)."""
    register_engine(ENGINE_NAME, f"{__name__}:run_trino")


register()
