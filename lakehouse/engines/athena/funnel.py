"""The ``athena`` funnel engine: the funnel computed by Athena.

A plain window-mode funnel (no breakdown, exclusion, held column or step window) runs
the read API's :func:`lakehouse.funnels.funnel_sql` (users per step only). Any other
funnel runs the SQL engines' full query (:func:`lakehouse.funnels.query.funnel_query`,
Trino's dialect: Athena engine v3 is Trino-based), which also returns the median times.
Both read the events table pinned to one snapshot with ``FOR VERSION AS OF``; step names,
excluded types, windows, the time range and property paths travel as Athena
``ExecutionParameters`` for the ``?`` placeholders.
"""

from __future__ import annotations

import logging
from typing import Any

from lakehouse.engines.athena.client import AthenaClient
from lakehouse.engines.athena.config import AthenaConfig
from lakehouse.engines.athena.sql import table_ref
from lakehouse.errors import UsageError
from lakehouse.funnels.engines import FunnelRequest
from lakehouse.funnels.query import funnel_query, result_parts
from lakehouse.funnels.result import FunnelGroup, FunnelResult, build_steps
from lakehouse.settings import Settings, TableName

log = logging.getLogger(__name__)

ENGINE_NAME = "athena"
ENGINE_PATH = f"{__name__}:run_athena"  # the ENGINES entry of lakehouse.funnels.engines


def _plain(request: FunnelRequest) -> bool:
    return (
        request.mode == "window"
        and request.breakdown is None
        and not request.exclude
        and request.hold is None
        and not request.step_windows
    )


def athena_funnel_query(
    request: FunnelRequest,
    table: TableName,
    *,
    snapshot_id: int | None = None,
    columns: tuple[str, ...] | None = None,
) -> tuple[str, list[Any]]:
    """The SQL and ``?`` parameters Athena runs for ``request``. ``columns`` (the
    table's) are needed for anything beyond a plain window-mode funnel."""
    from lakehouse.funnels.sql import funnel_sql

    ref = table_ref(table, snapshot_id=snapshot_id)
    if _plain(request):
        return funnel_sql(request.steps, request.window, ref, start=request.start, end=request.end)
    if columns is None:
        raise UsageError(
            "the athena engine computes window-mode funnels without breakdown unless it "
            "knows the table's columns (run_athena passes them)"
        )
    return funnel_query(
        request.spec, ref, columns, start=request.start, end=request.end, dialect="trino"
    )


def run_athena(
    settings: Settings,
    request: FunnelRequest,
    *,
    client: AthenaClient | None = None,
) -> FunnelResult:
    """The funnel of ``request`` on Athena at the request's snapshot (default: the
    table's current one, read from the catalog and reported in the result)."""
    from lakehouse.read.source import check_snapshot, open_events_table

    spec = request.spec
    table = open_events_table(settings)
    snapshot_id = check_snapshot(table, request.snapshot_id)
    if snapshot_id is None:
        snapshot_id = table.metadata.current_snapshot_id
    columns = tuple(f.name for f in table.schema().fields)
    plain = _plain(request)
    users = [0] * len(request.steps)
    medians: list[float | None] = [0.0] + [None] * (len(request.steps) - 1)
    rows: list[tuple[Any, ...]] = []
    if snapshot_id is not None:  # an empty table has no snapshot to read
        sql, params = athena_funnel_query(
            request, settings.table, snapshot_id=snapshot_id, columns=columns
        )
        athena = client or AthenaClient(AthenaConfig.from_env(settings))
        result = athena.execute(sql, params)
        if plain:
            found = result.dicts()
            if len(found) != 1:
                raise UsageError(f"the funnel query returned {len(found)} rows, expected 1")
            users = [int(found[0][f"users_{k}"] or 0) for k in range(1, len(request.steps) + 1)]
        else:
            rows = [
                (int(r[0]), r[1], int(r[2]), int(r[3]), None if r[4] is None else float(r[4]))
                for r in result.rows()
            ]
        log.info(
            "athena funnel %s at snapshot %s (scanned %s bytes)",
            result.query_id,
            snapshot_id,
            result.stats.data_scanned_bytes,
        )
    groups: tuple[FunnelGroup, ...] = ()
    if plain:
        steps = build_steps(request.steps, users, medians)
    else:
        steps, groups = result_parts(rows, spec)
    return FunnelResult.of(spec, steps, groups, engine=ENGINE_NAME, snapshot_id=snapshot_id)
