"""The SQL engines' funnel query (Trino, Athena and DuckDB run the same text, up to one
spelling) equals the Polars engine on generated events, with every option: strict mode,
breakdown, exclusions, a held column, per-step windows; medians included. Here DuckDB
runs it; tests/trino/test_funnels.py runs it on Trino."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import duckdb
import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lakehouse.funnels import FunnelResult, funnel
from lakehouse.funnels.query import DUCKDB_MACROS, funnel_query, result_parts
from lakehouse.funnels.result import FunnelStep
from lakehouse.funnels.spec import funnel_spec
from tests.analysis.reference import Ev, frame
from tests.analysis.test_funnel_features import (
    EXCLUSION_CASE,
    HOLD_CASE,
    _events,
    _exclusions,
    _secs,
    _steps,
)

S = 1_000_000


def run_query(df: pl.DataFrame, steps: list[str], window: timedelta, **kw: Any) -> tuple[Any, Any]:
    spec = funnel_spec(
        steps,
        window,
        kw.get("mode", "window"),
        kw.get("breakdown"),
        exclusions=kw.get("exclude", ()),
        hold=kw.get("hold"),
        step_windows=kw.get("step_windows") or {},
    )
    con = duckdb.connect()
    for macro in DUCKDB_MACROS:
        con.execute(macro)
    con.register("events", df.to_arrow())
    sql, params = funnel_query(spec, "events", tuple(df.columns), dialect="duckdb")
    rows = [tuple(r) for r in con.execute(sql, params).fetchall()]
    return result_parts(rows, spec)


def same_steps(a: tuple[FunnelStep, ...], b: tuple[FunnelStep, ...]) -> None:
    assert [s.users for s in a] == [s.users for s in b]
    for x, y in zip(a, b, strict=True):
        mx, my = x.median_seconds_to_step, y.median_seconds_to_step
        assert (mx is None and my is None) or math.isclose(mx, my, rel_tol=1e-9, abs_tol=1e-9)  # type: ignore[arg-type]


def same(result: FunnelResult, sql: tuple[Any, Any]) -> None:
    overall, groups = sql
    same_steps(result.steps, overall)
    assert [g.value for g in result.breakdown] == [g.value for g in groups]
    for g, h in zip(result.breakdown, groups, strict=True):
        same_steps(g.steps, h.steps)


def level_per_user(df: pl.DataFrame, **kw: Any) -> dict[str, int]:
    """Each user's level from the query run on that user's events alone."""
    out = {}
    for (user,), part in df.group_by(["user_id"]):
        overall, _ = run_query(part, ["a", "b", "c"], timedelta(minutes=1), **kw)
        out[str(user)] = sum(1 for s in overall if s.users)
    return out


def test_hand_cases_on_the_query() -> None:
    # the levels test_funnel_features.py computes by hand
    df = frame(EXCLUSION_CASE)
    assert level_per_user(df, exclude=["x"]) == {
        "before": 3,
        "gap1": 1,
        "gap2": 2,
        "after": 3,
        "retry": 2,
        "tie_next": 1,
        "tie_prev": 2,
    }
    assert level_per_user(df, exclude=["x@2"]) == {
        "before": 3,
        "gap1": 3,
        "gap2": 2,
        "after": 3,
        "retry": 2,
        "tie_next": 2,
        "tie_prev": 2,
    }
    assert level_per_user(frame(HOLD_CASE), hold="session_id") == {
        "same": 3,
        "split": 1,
        "late_c": 2,
        "second": 3,
        "none": 3,
    }
    two = frame(
        [
            Ev("e", "a", 0, session="s1"),
            Ev("e", "b", 2 * S, session="s1"),
            Ev("e", "a", 3 * S, session="s2"),
            Ev("e", "b", 4 * S, session="s2"),
        ]
    )
    overall, _ = run_query(two, ["a", "b"], timedelta(minutes=1), hold="session_id")
    assert overall[1].median_seconds_to_step == 2.0  # the first reach, not the shortest
    slow = frame([Ev("u", "a", 0), Ev("u", "b", 5 * S), Ev("u", "c", 30 * S)])
    overall, _ = run_query(
        slow, ["a", "b", "c"], timedelta(minutes=1), step_windows={3: timedelta(seconds=20)}
    )
    assert [s.users for s in overall] == [1, 1, 0]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    events=_events,
    steps=_steps,
    window=_secs,
    own=st.dictionaries(st.integers(2, 4), _secs, max_size=2),
    exclusions=_exclusions,
    hold=st.sampled_from((None, "session_id", "properties.s")),
    mode=st.sampled_from(("window", "strict")),
    breakdown=st.sampled_from((None, "session_id")),
)
def test_query_equals_polars(
    events: list[Ev],
    steps: list[str],
    window: int,
    own: dict[int, int],
    exclusions: list[tuple[str, int | None]],
    hold: str | None,
    mode: str,
    breakdown: str | None,
) -> None:
    df = frame(events)
    kw: dict[str, Any] = {
        "mode": mode,
        "breakdown": breakdown,
        "hold": hold,
        "exclude": [
            x if a is None else f"{x}@{a}" for x, a in exclusions if a is None or a < len(steps)
        ],
        "step_windows": {k: timedelta(seconds=v) for k, v in own.items() if k <= len(steps)},
    }
    result = funnel(df.lazy(), steps, timedelta(seconds=window), **kw)
    same(result, run_query(df, steps, timedelta(seconds=window), **kw))
