"""The window-mode funnel as Trino/Athena SQL: window functions and aggregation only.

The query mirrors the Polars engine (and ClickHouse's ``windowFunnel``) level by level:

1. ``matched``: one row per event and per step it matches (``UNNEST ... WITH
   ORDINALITY`` of the step names, so a name repeated in the steps matches twice),
   with the client time as epoch microseconds.
2. ``level_k``: ``first_k``, the first-step time of the latest chain that reached step
   ``k`` at or before each row, ordered by ``(ts_us, step_index)`` per user. Those first
   times never decrease along a user's rows, so "the latest value" is a running ``max``;
   a step-``k`` row extends the chain when ``ts_us <= first_{k-1} + window``.
3. The result: one row, ``users_1 .. users_K``, the users reaching each step.

Step names, the window and the time range are bound parameters (``?``, the trino
client's qmark style); only the already-quoted table reference is part of the text.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from lakehouse.errors import UsageError
from lakehouse.funnels.spec import funnel_spec
from lakehouse.read.sequence import ordered_view_sql
from lakehouse.read.source import check_range

_ORDER = "PARTITION BY user_id ORDER BY ts_us, step_index"
_FRAME = "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW"

# Epoch microseconds of a timestamp(6) with time zone. to_unixtime returns a double whose
# error at today's epochs is well below 0.5 µs, so rounding recovers the exact value.
_TS_US = "CAST(round(to_unixtime(e.client_ts) * 1000000) AS BIGINT)"


def _marks(n: int) -> str:
    return ", ".join("?" for _ in range(n))


def funnel_sql(
    steps: Sequence[str],
    window: timedelta,
    table_ref: str,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
) -> tuple[str, list[Any]]:
    """SQL and its parameters for the window-mode funnel over ``table_ref`` (an
    already-quoted table reference such as ``"lakehouse"."analytics"."events"``).

    The query returns one row with columns ``users_1`` .. ``users_K`` (BIGINT): the
    number of users reaching each step, as ClickHouse's ``windowFunnel(window)`` counts
    them. Run it with the trino client: ``cursor.execute(sql, params)``.
    ``start``/``end`` restrict the events to ``start <= client_ts < end``.
    """
    spec = funnel_spec(steps, window, "window")
    ordered_view_sql(table_ref)  # the same check on the reference
    if "?" in table_ref:
        raise UsageError(f"a table reference with '?' cannot be used: {table_ref!r}")
    start, end = check_range(start, end)
    k_steps = len(spec.steps)
    params: list[Any] = [*spec.steps, *sorted(set(spec.steps))]
    where = [f"e.event_type IN ({_marks(len(set(spec.steps)))})", "e.event_type = s.step_name"]
    if start is not None:
        where.append("e.client_ts >= ?")
        params.append(start)
    if end is not None:
        where.append("e.client_ts < ?")
        params.append(end)
    ctes = [
        "matched AS (\n"
        f"    SELECT e.user_id, {_TS_US} AS ts_us, s.step_index\n"
        f"    FROM {table_ref.strip()} AS e\n"
        f"    CROSS JOIN UNNEST(ARRAY[{_marks(k_steps)}]) WITH ORDINALITY AS s(step_name, step_index)\n"
        f"    WHERE {' AND '.join(where)}\n"
        ")",
        "level_1 AS (\n"
        "    SELECT user_id, ts_us, step_index,\n"
        f"        max(CASE WHEN step_index = 1 THEN ts_us END) OVER ({_ORDER} {_FRAME}) AS first_1\n"
        "    FROM matched\n"
        ")",
    ]
    for k in range(2, k_steps + 1):
        carried = ", ".join(f"first_{j}" for j in range(1, k))
        ctes.append(
            f"level_{k} AS (\n"
            f"    SELECT user_id, ts_us, step_index, {carried},\n"
            f"        max(CASE WHEN step_index = {k} AND ts_us <= first_{k - 1} + ? "
            f"THEN first_{k - 1} END) OVER ({_ORDER} {_FRAME}) AS first_{k}\n"
            f"    FROM level_{k - 1}\n"
            ")"
        )
        params.append(spec.window_us)
    counts = ",\n    ".join(
        f"count(DISTINCT CASE WHEN first_{k} IS NOT NULL THEN user_id END) AS users_{k}"
        for k in range(1, k_steps + 1)
    )
    sql = "WITH " + ",\n".join(ctes) + f"\nSELECT\n    {counts}\nFROM level_{k_steps}"
    if sql.count("?") != len(params):  # pragma: no cover - a bug here must not run
        raise UsageError("internal error: placeholders and parameters disagree")
    return sql, params
