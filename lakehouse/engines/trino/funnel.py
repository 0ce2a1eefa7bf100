"""The ``trino`` funnel engine: the whole funnel computed by Trino in one SQL query.

Same semantics as the Polars engine (:mod:`lakehouse.funnels.compute`), which itself
replicates ClickHouse's ``windowFunnel(window)`` in window mode; the users per step are
also what :func:`lakehouse.funnels.funnel_sql` counts (the same level-by-level running
maximum). On top of the users, this query returns the median time to each step (exact:
the middle one or two values), strict mode and a breakdown, so a :class:`FunnelResult`
from Trino has every field the Polars one has.

Per row ``r`` of a user's sequence and per level ``k`` (0-based), ``c_k`` is the first
timestamp of the chain that reaches level ``k`` on ``r`` (NULL when none does):

* window mode, rows = (event, matching step) entries ordered by ``(ts_us, step_index)``:
  ``c_0 = ts`` on step-1 entries; ``F_k`` = running ``max(c_k)`` (the latest chain at
  level ``k``); ``c_{k+1} = F_k`` on step-``k+2`` entries with ``ts <= F_k + window``.
* strict mode, rows = all the user's events ordered by ``(ts_us, event_id)``: ``S_k`` =
  the last non-null of ``c_k`` or ``-1`` on events that are not step ``k+2`` (a reset);
  ``c_{k+1} = lag(S_k)`` on step-``k+2`` events when it is a chain within the window.

A user's time to step ``k`` is ``ts - c_k`` on the first row where ``c_k`` is set.

Step names, the window, the time range and the property path are bound parameters; the
only other text is the quoted table reference (with ``FOR VERSION AS OF <int>``) and a
quoted column name checked against the table's columns.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from lakehouse.engines.trino.client import connect, query
from lakehouse.engines.trino.sql import quote_ident, table_ref
from lakehouse.errors import UsageError
from lakehouse.funnels.engines import FunnelRequest, register_engine
from lakehouse.funnels.result import FunnelGroup, FunnelResult, build_steps
from lakehouse.funnels.spec import PROPERTY_PREFIX, FunnelSpec, funnel_spec
from lakehouse.settings import Settings

log = logging.getLogger(__name__)

ENGINE_NAME = "trino"
_RESET = -1  # "no open chain" in strict mode: below every timestamp (events are after 2000)
_TS_US = "CAST(round(to_unixtime(e.client_ts) * 1000000) AS BIGINT)"
_ROWS = "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW"


@dataclass
class _Sql:
    """Text and its ``?`` parameters, appended together so they stay in order."""

    parts: list[str] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)

    def add(self, text: str, *params: Any) -> None:
        if text.count("?") != len(params):  # pragma: no cover - a bug here must not run
            raise UsageError("internal error: placeholders and parameters disagree")
        self.parts.append(text)
        self.params.extend(params)

    @property
    def text(self) -> str:
        return "".join(self.parts)


def _marks(n: int) -> str:
    return ", ".join("?" for _ in range(n))


def _breakdown(spec: FunnelSpec, columns: tuple[str, ...], sql: _Sql) -> None:
    """The breakdown value of each event as ``g`` (varchar), or NULL without a breakdown."""
    if spec.breakdown is None:
        sql.add("CAST(NULL AS varchar) AS g")
    elif spec.breakdown in columns:
        sql.add(f"CAST(e.{quote_ident(spec.breakdown)} AS varchar) AS g")
    elif spec.breakdown.startswith(PROPERTY_PREFIX) and "properties" in columns:
        key = spec.breakdown[len(PROPERTY_PREFIX) :]  # checked by funnel_spec: [A-Za-z0-9_-]
        sql.add("json_extract_scalar(e.properties, ?) AS g", f'$["{key}"]')
    else:
        raise UsageError(
            f"cannot break down by {spec.breakdown!r}: not a column "
            f"(columns: {', '.join(columns)}) nor properties.<key>"
        )


def funnel_query(
    spec: FunnelSpec,
    table: str,
    columns: tuple[str, ...],
    *,
    start: Any = None,
    end: Any = None,
) -> tuple[str, list[Any]]:
    """SQL and parameters of the funnel over ``table`` (a quoted reference). Rows:
    ``(part, g, k, users, median_us)``; part 0 is the whole funnel, part 1 one funnel
    per breakdown value ``g``; ``k`` is 1-based; steps nobody reached have no row."""
    k_steps = len(spec.steps)
    window = spec.window_us
    sql = _Sql()
    strict = spec.mode == "strict"
    sql.add("WITH base AS (\n    SELECT ")
    _breakdown(spec, columns, sql)
    sql.add(f", e.user_id, {_TS_US} AS ts_us")
    if strict:
        sql.add(f", e.event_id AS tie, e.event_type\n    FROM {table} AS e\n    WHERE true")
    else:
        sql.add(
            ", s.step_index AS tie, s.step_index"
            f"\n    FROM {table} AS e\n"
            f"    CROSS JOIN UNNEST(ARRAY[{_marks(k_steps)}]) WITH ORDINALITY AS s(step_name, step_index)\n"
            f"    WHERE e.event_type IN ({_marks(len(set(spec.steps)))}) AND e.event_type = s.step_name",
            *spec.steps,
            *sorted(set(spec.steps)),
        )
    if start is not None:
        sql.add(" AND e.client_ts >= ?", start)
    if end is not None:
        sql.add(" AND e.client_ts < ?", end)
    cols = "g, user_id, ts_us, tie" + (", event_type" if strict else ", step_index")
    sql.add(
        f"\n),\nentries AS (\n    SELECT 0 AS part, CAST(NULL AS varchar) AS g_all, {cols} FROM base"
    )
    if spec.breakdown is not None:
        sql.add(f"\n    UNION ALL SELECT 1, g, {cols} FROM base")
    over = "PARTITION BY part, g_all, user_id ORDER BY ts_us, tie"
    first = (
        "CASE WHEN event_type = ? THEN ts_us END"
        if strict
        else "CASE WHEN step_index = 1 THEN ts_us END"
    )
    sql.add(
        f"\n),\nlevel_0 AS (\n    SELECT part, g_all AS g, user_id, ts_us, tie, "
        f"{'event_type' if strict else 'step_index'}, row_number() OVER ({over}) AS rn, "
        f"{first} AS c_0\n    FROM entries\n)",
        *((spec.steps[0],) if strict else ()),
    )
    over = "PARTITION BY part, g, user_id ORDER BY ts_us, tie"
    carried = ["c_0"]
    for k in range(k_steps - 1):
        keep = "part, g, user_id, ts_us, tie, rn, " + ("event_type, " if strict else "step_index, ")
        keep += ", ".join(carried)
        if strict:
            sql.add(
                f",\nstate_{k} AS (\n    SELECT {keep}, last_value(CASE WHEN c_{k} IS NOT NULL THEN c_{k} "
                f"WHEN event_type <> ? THEN {_RESET} END) IGNORE NULLS OVER ({over} {_ROWS}) AS s_{k}\n"
                f"    FROM level_{k}\n)",
                spec.steps[k + 1],
            )
            sql.add(
                f",\nlevel_{k + 1} AS (\n    SELECT {keep}, CASE WHEN event_type = ? AND p > {_RESET} "
                f"AND ts_us - p <= ? THEN p END AS c_{k + 1}\n"
                f"    FROM (SELECT *, lag(s_{k}) OVER ({over}) AS p FROM state_{k})\n)",
                spec.steps[k + 1],
                window,
            )
        else:
            sql.add(
                f",\nlevel_{k + 1} AS (\n    SELECT {keep}, CASE WHEN step_index = {k + 2} "
                f"AND ts_us <= f + ? THEN f END AS c_{k + 1}\n"
                f"    FROM (SELECT *, max(c_{k}) OVER ({over} {_ROWS}) AS f FROM level_{k})\n)",
                window,
            )
        carried.append(f"c_{k + 1}")
    reach = ", ".join(
        f"min_by(ts_us - c_{k}, rn) FILTER (WHERE c_{k} IS NOT NULL) AS t_{k}"
        for k in range(k_steps)
    )
    times = ", ".join(f"t_{k}" for k in range(k_steps))
    sql.add(
        f",\nper_user AS (\n    SELECT part, g, user_id, {reach}\n    FROM level_{k_steps - 1}\n"
        "    GROUP BY part, g, user_id\n),\n"
        "times AS (\n    SELECT part, g, k, t FROM per_user\n"
        f"    CROSS JOIN UNNEST(ARRAY[{times}]) WITH ORDINALITY AS u(t, k)\n"
        "    WHERE t IS NOT NULL\n),\n"
        "ranked AS (\n    SELECT part, g, k, t, row_number() OVER (PARTITION BY part, g, k ORDER BY t) AS rn,\n"
        "        count(*) OVER (PARTITION BY part, g, k) AS n\n    FROM times\n)\n"
        "SELECT part, g, k, max(n) AS users,\n"
        "    avg(t) FILTER (WHERE rn IN ((n + 1) / 2, (n + 2) / 2)) AS median_us\n"
        "FROM ranked\nGROUP BY part, g, k"
    )
    return sql.text, sql.params


def _steps_of(rows: list[tuple[Any, ...]], spec: FunnelSpec) -> Any:
    users = [0] * len(spec.steps)
    medians: list[float | None] = [None] * len(spec.steps)
    for k, n, median_us in rows:
        users[int(k) - 1] = int(n)
        medians[int(k) - 1] = None if median_us is None else float(median_us) / 1e6
    return build_steps(spec.steps, users, medians)


def run_trino(
    settings: Settings, request: FunnelRequest, *, port: int | None = None
) -> FunnelResult:
    """The funnel of ``request`` computed by the local Trino (``port``, default
    ``LAKEHOUSE_TRINO_PORT`` or 8080) at the request's snapshot, by default the table's
    current one, pinned with ``FOR VERSION AS OF`` and reported in the result."""
    from lakehouse.read.source import check_range, check_snapshot, open_events_table

    spec = funnel_spec(request.steps, request.window, request.mode, request.breakdown)
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
    overall = _steps_of([r[2:] for r in rows if r[0] == 0], spec)
    groups: list[FunnelGroup] = []
    if spec.breakdown is not None:
        values = {r[1] for r in rows if r[0] == 1}
        for value in values:
            part = [r[2:] for r in rows if r[0] == 1 and r[1] == value]
            groups.append(FunnelGroup(value, _steps_of(part, spec)))
        groups.sort(key=lambda g: (-g.steps[0].users, g.value is None, g.value or ""))
    log.info(
        "trino funnel of %d steps (%s) at snapshot %s in %.2f s",
        len(spec.steps),
        spec.mode,
        snapshot_id,
        time.perf_counter() - began,
    )
    return FunnelResult(
        steps=overall,
        window=spec.window,
        mode=spec.mode,
        breakdown_by=spec.breakdown,
        breakdown=tuple(groups),
        engine=ENGINE_NAME,
        snapshot_id=snapshot_id,
    )


def register() -> None:
    """Make ``trino`` a funnel engine of :func:`lakehouse.funnels.run_funnel` (the CLI's
    ``--engine`` choices are fixed when it is built: there, ENGINES names this module)."""
    register_engine(ENGINE_NAME, f"{__name__}:run_trino")


register()
