"""The ``athena`` funnel engine: the window-mode funnel computed by Athena.

The SQL is the read API's :func:`lakehouse.funnels.funnel_sql` (window functions and
aggregation only, so it runs on Athena engine v3 as on Trino), over the events table
pinned to one snapshot with ``FOR VERSION AS OF``. Step names, the window and the time
range travel as Athena ``ExecutionParameters`` for the ``?`` placeholders.

Window mode only, without breakdown, and without median times (``funnel_sql`` counts
users); strict mode or a breakdown is a usage error naming the engines that have them.
"""

from __future__ import annotations

import logging
from typing import Any

from lakehouse.engines.athena.client import AthenaClient
from lakehouse.engines.athena.config import AthenaConfig
from lakehouse.engines.athena.sql import table_ref
from lakehouse.errors import UsageError
from lakehouse.funnels.engines import FunnelRequest
from lakehouse.funnels.result import FunnelResult, build_steps
from lakehouse.settings import Settings, TableName

log = logging.getLogger(__name__)

ENGINE_NAME = "athena"
ENGINE_PATH = f"{__name__}:run_athena"  # the ENGINES entry of lakehouse.funnels.engines


def athena_funnel_query(
    request: FunnelRequest, table: TableName, *, snapshot_id: int | None = None
) -> tuple[str, list[Any]]:
    """The SQL and ``?`` parameters Athena runs for ``request``."""
    from lakehouse.funnels.sql import funnel_sql

    if request.mode != "window" or request.breakdown is not None:
        raise UsageError(
            "the athena engine computes window-mode funnels without breakdown; "
            "use --engine polars (or trino) for --mode strict or --breakdown"
        )
    ref = table_ref(table, snapshot_id=snapshot_id)
    return funnel_sql(request.steps, request.window, ref, start=request.start, end=request.end)


def run_athena(
    settings: Settings,
    request: FunnelRequest,
    *,
    client: AthenaClient | None = None,
) -> FunnelResult:
    """The funnel of ``request`` on Athena at the request's snapshot (default: the
    table's current one, read from the catalog and reported in the result)."""
    from lakehouse.read.source import check_snapshot, open_events_table

    if request.mode != "window" or request.breakdown is not None:
        athena_funnel_query(request, settings.table)  # raises the usage error
    table = open_events_table(settings)
    snapshot_id = check_snapshot(table, request.snapshot_id)
    if snapshot_id is None:
        snapshot_id = table.metadata.current_snapshot_id
    users = [0] * len(request.steps)
    if snapshot_id is not None:  # an empty table has no snapshot to read
        sql, params = athena_funnel_query(request, settings.table, snapshot_id=snapshot_id)
        athena = client or AthenaClient(AthenaConfig.from_env(settings))
        result = athena.execute(sql, params)
        rows = result.dicts()
        if len(rows) != 1:
            raise UsageError(f"the funnel query returned {len(rows)} rows, expected 1")
        users = [int(rows[0][f"users_{k}"] or 0) for k in range(1, len(request.steps) + 1)]
        log.info(
            "athena funnel %s at snapshot %s: %s (scanned %s bytes)",
            result.query_id,
            snapshot_id,
            users,
            result.stats.data_scanned_bytes,
        )
    medians: list[float | None] = [0.0] + [None] * (len(request.steps) - 1)
    return FunnelResult(
        steps=build_steps(request.steps, users, medians),
        window=request.window,
        mode="window",
        engine=ENGINE_NAME,
        snapshot_id=snapshot_id,
    )
