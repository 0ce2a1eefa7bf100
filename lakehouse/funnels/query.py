"""The whole funnel as one SQL query, for the SQL engines (Trino, Athena, DuckDB).

Same semantics as the Polars engine (:mod:`lakehouse.funnels.levels`), which itself
replicates ClickHouse's ``windowFunnel(window)`` in window mode, with the same options:
strict mode, a breakdown, exclusion steps, a held column and per-step windows. Rows:
``(part, g, k, users, median_us)``; part 0 is the whole funnel, part 1 one funnel per
breakdown value ``g``; ``k`` is 1-based; steps nobody reached have no row.

Per row ``r`` of a sequence (a user's events; with a held column, a user's events with
one held value) and per level ``k`` (0-based), ``c_k`` is the first timestamp of the
chain that reaches level ``k`` on ``r`` (NULL when none does):

* window mode, rows = (event, matching step) entries plus excluded events (``step_index``
  0: first at their timestamp), ordered by ``(ts_us, step_index)``: ``c_0 = ts`` on
  step-1 entries; ``F_k`` = running ``max(c_k)`` (the latest chain at level ``k``), or,
  when events are excluded after step ``k+1``, the last non-null of ``c_k`` or ``-1`` on
  those excluded events (a reset); ``c_{k+1} = F_k`` on step-``k+2`` entries with
  ``ts <= F_k + window_{k+2}``.
* strict mode, rows = all the sequence's events ordered by ``(ts_us, event_id)``:
  ``S_k`` = the last non-null of ``c_k`` or ``-1`` on events that are not step ``k+2``
  (a reset); ``c_{k+1} = lag(S_k)`` on step-``k+2`` events when it is a chain within the
  window. (An excluded type is never a step, so it already resets: nothing to add.)

A sequence's time to step ``k`` is ``ts - c_k`` on the first row where ``c_k`` is set; a
user's is that of the sequence that reached ``k`` first (then the shorter time).

Step names, excluded types, windows, the time range and the property path are bound
parameters (``?``); the only other text is the table reference and a quoted column name
checked against the table's columns. ``dialect`` spells the one construct the engines
write differently (``last_value(x) IGNORE NULLS`` on Trino, ``last_value(x IGNORE
NULLS)`` on DuckDB); DuckDB also needs the macros in :data:`DUCKDB_MACROS`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from lakehouse.errors import UsageError
from lakehouse.funnels.result import FunnelGroup, build_steps
from lakehouse.funnels.spec import PROPERTY_PREFIX, FunnelSpec

Dialect = Literal["trino", "duckdb"]

_RESET = -1  # "no open chain": below every timestamp (events are after 1970)
_TS_US = "CAST(round(to_unixtime(e.client_ts) * 1000000) AS BIGINT)"
_ROWS = "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW"

# The Trino functions the query uses that DuckDB lacks, as DuckDB macros.
DUCKDB_MACROS = (
    "CREATE OR REPLACE MACRO to_unixtime(t) AS epoch_us(t) / 1e6",
    # '$["key"]' (Trino's path, key checked by funnel_spec) -> '$."key"'
    "CREATE OR REPLACE MACRO json_extract_scalar(j, p) AS "
    "json_extract_string(j, '$.\"' || substr(p, 4, length(p) - 5) || '\"')",
)


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


def quote_ident(name: str) -> str:
    """``name`` as a delimited identifier: ``"a""b"`` for ``a"b``."""
    return '"' + name.replace('"', '""') + '"'


def _value(name: str | None, alias: str, columns: tuple[str, ...], sql: _Sql, what: str) -> None:
    """The value of a column or ``properties.<key>`` of each event as ``alias``."""
    if name is None:
        sql.add(f"CAST(NULL AS varchar) AS {alias}")
    elif name in columns:
        sql.add(f"CAST(e.{quote_ident(name)} AS varchar) AS {alias}")
    elif name.startswith(PROPERTY_PREFIX) and "properties" in columns:
        key = name[len(PROPERTY_PREFIX) :]  # checked by funnel_spec: [A-Za-z0-9_-]
        sql.add(f"json_extract_scalar(e.properties, ?) AS {alias}", f'$["{key}"]')
    else:
        raise UsageError(
            f"cannot {what} by {name!r}: not a column (columns: {', '.join(columns)}) "
            "nor properties.<key>"
        )


def _last_non_null(expr: str, over: str, dialect: Dialect) -> str:
    if dialect == "duckdb":
        return f"last_value({expr} IGNORE NULLS) OVER ({over} {_ROWS})"
    return f"last_value({expr}) IGNORE NULLS OVER ({over} {_ROWS})"


def funnel_query(
    spec: FunnelSpec,
    table: str,
    columns: tuple[str, ...],
    *,
    start: Any = None,
    end: Any = None,
    dialect: Dialect = "trino",
) -> tuple[str, list[Any]]:
    """SQL and parameters of the funnel over ``table`` (a quoted reference or a
    ``FROM``-able expression). Rows: ``(part, g, k, users, median_us)``."""
    k_steps = len(spec.steps)
    sql = _Sql()
    strict = spec.mode == "strict"
    excluded = () if strict else spec.excluded_types
    sql.add("WITH base AS (\n    SELECT ")
    _value(spec.breakdown, "g", columns, sql, "break down")
    sql.add(", ")
    _value(spec.hold, "h", columns, sql, "hold")
    sql.add(f", e.user_id, {_TS_US} AS ts_us, e.event_type")
    if strict:
        sql.add(f", e.event_id AS tie\n    FROM {table} AS e\n    WHERE true")
    else:
        names = [*spec.steps, *excluded]
        sql.add(
            f", CASE WHEN s.ord <= {k_steps} THEN s.ord ELSE 0 END AS tie\n    FROM {table} AS e\n"
            f"    CROSS JOIN UNNEST(ARRAY[{_marks(len(names))}]) WITH ORDINALITY AS s(step_name, ord)\n"
            f"    WHERE e.event_type IN ({_marks(len(set(names)))}) AND e.event_type = s.step_name",
            *names,
            *sorted(set(names)),
        )
    if start is not None:
        sql.add(" AND e.client_ts >= ?", start)
    if end is not None:
        sql.add(" AND e.client_ts < ?", end)
    cols = "g, h, user_id, ts_us, tie, event_type"
    sql.add(
        f"\n),\nentries AS (\n    SELECT 0 AS part, CAST(NULL AS varchar) AS g_all, {cols} FROM base"
    )
    if spec.breakdown is not None:
        sql.add(f"\n    UNION ALL SELECT 1, g, {cols} FROM base")
    over = "PARTITION BY part, g_all, user_id, h ORDER BY ts_us, tie"
    first = (
        "CASE WHEN event_type = ? THEN ts_us END" if strict else "CASE WHEN tie = 1 THEN ts_us END"
    )
    sql.add(
        f"\n),\nlevel_0 AS (\n    SELECT part, g_all AS g, h, user_id, ts_us, tie, event_type, "
        f"row_number() OVER ({over}) AS rn, {first} AS c_0\n    FROM entries\n)",
        *((spec.steps[0],) if strict else ()),
    )
    over = "PARTITION BY part, g, user_id, h ORDER BY ts_us, tie"
    carried = ["c_0"]
    for k in range(k_steps - 1):
        keep = "part, g, h, user_id, ts_us, tie, rn, event_type, " + ", ".join(carried)
        window = spec.window_us_for(k + 2)
        if strict:
            state = _last_non_null(
                f"CASE WHEN c_{k} IS NOT NULL THEN c_{k} WHEN event_type <> ? THEN {_RESET} END",
                over,
                dialect,
            )
            sql.add(
                f",\nstate_{k} AS (\n    SELECT {keep}, {state} AS s_{k}\n    FROM level_{k}\n)",
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
            resets = spec.excluded_after(k + 1)
            if resets:
                latest = _last_non_null(
                    f"CASE WHEN c_{k} IS NOT NULL THEN c_{k} WHEN tie = 0 AND event_type IN "
                    f"({_marks(len(resets))}) THEN {_RESET} END",
                    over,
                    dialect,
                )
            else:
                latest = f"max(c_{k}) OVER ({over} {_ROWS})"
            sql.add(
                f",\nlevel_{k + 1} AS (\n    SELECT {keep}, CASE WHEN tie = {k + 2} "
                f"AND f > {_RESET} AND ts_us <= f + ? THEN f END AS c_{k + 1}\n"
                f"    FROM (SELECT *, {latest} AS f FROM level_{k})\n)",
                window,
                *resets,
            )
        carried.append(f"c_{k + 1}")
    per_sequence = ", ".join(
        f"min_by(ts_us - c_{k}, rn) FILTER (WHERE c_{k} IS NOT NULL) AS t_{k}, "
        f"min(ts_us) FILTER (WHERE c_{k} IS NOT NULL) AS r_{k}"
        for k in range(k_steps)
    )
    per_user = ", ".join(
        f"min_by(t_{k}, ROW(r_{k}, t_{k})) FILTER (WHERE t_{k} IS NOT NULL) AS t_{k}"
        for k in range(k_steps)
    )
    times = ", ".join(f"t_{k}" for k in range(k_steps))
    sql.add(
        f",\nper_sequence AS (\n    SELECT part, g, user_id, {per_sequence}\n"
        f"    FROM level_{k_steps - 1}\n    GROUP BY part, g, user_id, h\n),\n"
        f"per_user AS (\n    SELECT part, g, user_id, {per_user}\n    FROM per_sequence\n"
        "    GROUP BY part, g, user_id\n),\n"
        "times AS (\n    SELECT part, g, k, t FROM per_user\n"
        f"    CROSS JOIN UNNEST(ARRAY[{times}]) WITH ORDINALITY AS u(t, k)\n"
        "    WHERE t IS NOT NULL\n),\n"
        "ranked AS (\n    SELECT part, g, k, t, row_number() OVER (PARTITION BY part, g, k ORDER BY t) AS rn,\n"
        "        count(*) OVER (PARTITION BY part, g, k) AS n\n    FROM times\n)\n"
        # the middle one or two values: 2 * rn in (n, n + 1, n + 2) (no integer division,
        # which the engines spell differently)
        "SELECT part, g, k, max(n) AS users,\n"
        "    avg(t) FILTER (WHERE 2 * rn IN (n, n + 1, n + 2)) AS median_us\n"
        "FROM ranked\nGROUP BY part, g, k"
    )
    return sql.text, sql.params


def steps_of(rows: list[tuple[Any, ...]], spec: FunnelSpec) -> Any:
    """Steps from ``(k, users, median_us)`` rows."""
    users = [0] * len(spec.steps)
    medians: list[float | None] = [None] * len(spec.steps)
    for k, n, median_us in rows:
        users[int(k) - 1] = int(n)
        medians[int(k) - 1] = None if median_us is None else float(median_us) / 1e6
    return build_steps(spec.steps, users, medians)


def result_parts(
    rows: list[tuple[Any, ...]], spec: FunnelSpec
) -> tuple[Any, tuple[FunnelGroup, ...]]:
    """The overall steps and the breakdown groups (most users at step 1 first) from the
    query's ``(part, g, k, users, median_us)`` rows."""
    overall = steps_of([r[2:] for r in rows if r[0] == 0], spec)
    groups: list[FunnelGroup] = []
    if spec.breakdown is not None:
        for value in {r[1] for r in rows if r[0] == 1}:
            part = [r[2:] for r in rows if r[0] == 1 and r[1] == value]
            groups.append(FunnelGroup(value, steps_of(part, spec)))
        groups.sort(key=lambda g: (-g.steps[0].users, g.value is None, g.value or ""))
    return overall, tuple(groups)
