"""The ``duckdb`` funnel engine: the SQL engines' funnel query
(:func:`lakehouse.funnels.query.funnel_query`) run by DuckDB in this process over the
snapshot's data files (time range pruned by the plan, as ``lakehouse sql`` does)."""

from __future__ import annotations

import logging
import time

from lakehouse.engines.duckdb.session import open_session
from lakehouse.funnels.engines import FunnelRequest
from lakehouse.funnels.query import DUCKDB_MACROS, funnel_query, result_parts
from lakehouse.funnels.result import FunnelResult
from lakehouse.settings import Settings

log = logging.getLogger(__name__)

ENGINE_NAME = "duckdb"


def run_duckdb(settings: Settings, request: FunnelRequest) -> FunnelResult:
    """The funnel of ``request`` at its snapshot (default: the current one)."""
    spec = request.spec
    began = time.perf_counter()
    session = open_session(
        settings, snapshot_id=request.snapshot_id, start=request.start, end=request.end
    )
    try:
        for macro in DUCKDB_MACROS:
            session.connection.execute(macro)
        sql, params = funnel_query(spec, "events", session.columns, dialect="duckdb")
        rows = [tuple(r) for r in session.connection.execute(sql, params).fetchall()]
    finally:
        session.close()
    overall, groups = result_parts(rows, spec)
    log.info(
        "duckdb funnel of %d steps (%s) at snapshot %s over %d files in %.2f s",
        len(spec.steps),
        spec.mode,
        session.snapshot_id,
        session.files,
        time.perf_counter() - began,
    )
    return FunnelResult.of(
        spec, overall, groups, engine=ENGINE_NAME, snapshot_id=session.snapshot_id
    )
