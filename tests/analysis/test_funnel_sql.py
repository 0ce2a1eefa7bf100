"""The Trino/Athena SQL of the window funnel: step names only as bound parameters, and
the same users per step as ClickHouse and the Polars engine when DuckDB runs the text.

DuckDB is not Trino: it stands in to check the query's logic (window frames, ordinality,
aggregation). ``to_unixtime`` is the one Trino function DuckDB lacks; a macro supplies it.
The query has still to be run on a real Trino (see docs/analysis.md).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import duckdb
import polars as pl
import pytest
from hypothesis import given, settings

from lakehouse.errors import UsageError
from lakehouse.funnels import funnel, funnel_sql
from tests.analysis.reference import Ev, chdb_levels, frame
from tests.analysis.test_funnel_oracle import _events, _steps, _window, demo_frame

S = 1_000_000


def run_duckdb(df: pl.DataFrame, steps: list[str], window: timedelta, **kw: datetime) -> list[int]:
    sql, params = funnel_sql(steps, window, '"events"', **kw)
    con = duckdb.connect()
    con.execute("CREATE MACRO to_unixtime(t) AS epoch_us(t) / 1e6")
    con.register("events", df.to_arrow())
    row = con.execute(sql, params).fetchone()
    assert row is not None
    return [int(v) for v in row]


def from_levels(levels: dict[str, int], k_steps: int) -> list[int]:
    return [sum(1 for v in levels.values() if v >= k) for k in range(1, k_steps + 1)]


def test_step_names_are_only_parameters() -> None:
    steps = ["app_open", "it's; DROP TABLE events --", "view?product", "app_open"]
    sql, params = funnel_sql(steps, timedelta(hours=1), '"lakehouse"."analytics"."events"')
    for name in steps:
        assert name not in sql
    assert "'" not in sql.replace("'millisecond'", "")
    assert sql.count("?") == len(params)
    # UNNEST gets the steps in order, IN the distinct names, then one window per level
    assert params[:4] == steps
    assert sorted(params[4:7]) == sorted(set(steps))
    assert params[7:] == [3_600_000_000] * 3
    assert 'FROM "lakehouse"."analytics"."events" AS e' in sql
    assert re.search(r"users_4\s+FROM level_4\s*$", sql)


def test_time_range_parameters() -> None:
    start, end = datetime(2024, 5, 1, tzinfo=UTC), datetime(2024, 5, 2, tzinfo=UTC)
    sql, params = funnel_sql(["a", "b"], timedelta(minutes=5), "t", start=start, end=end)
    assert "e.client_ts >= ?" in sql and "e.client_ts < ?" in sql
    assert params == ["a", "b", "a", "b", start, end, 300_000_000]


@pytest.mark.parametrize(
    ("steps", "window", "ref", "message"),
    [
        ([], timedelta(hours=1), "t", "at least one step"),
        (["a"], timedelta(0), "t", "must be positive"),
        (["a"], timedelta(hours=1), "t; DROP TABLE t", "not a table reference"),
        (["a"], timedelta(hours=1), '"t?"', "'?'"),
    ],
)
def test_bad_arguments(steps: list[str], window: timedelta, ref: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        funnel_sql(steps, window, ref)


@settings(max_examples=60, deadline=None)
@given(events=_events, steps=_steps, window_us=_window)
def test_sql_equals_clickhouse_on_random_events(
    events: list[Ev], steps: list[str], window_us: int
) -> None:
    df = frame(events)
    window = timedelta(microseconds=window_us)
    expected = from_levels(chdb_levels(df, steps, window_us), len(steps))
    assert run_duckdb(df, steps, window) == expected


def test_sql_equals_polars_and_clickhouse_on_demo_data() -> None:
    df = demo_frame(5)
    steps = ["app_open", "view_product", "add_to_cart", "checkout"]
    for window in (timedelta(minutes=2), timedelta(hours=1)):
        polars_users = [s.users for s in funnel(df.lazy(), steps, window).steps]
        ch = from_levels(chdb_levels(df, steps, window // timedelta(microseconds=1)), len(steps))
        assert run_duckdb(df, steps, window) == polars_users == ch
    # a client-time range keeps exactly the events in [start, end)
    start = df["client_ts"].min() + timedelta(hours=12)  # type: ignore[operator]
    end = start + timedelta(hours=24)
    window = timedelta(hours=1)
    inside = df.filter((pl.col("client_ts") >= start) & (pl.col("client_ts") < end))
    expected = [s.users for s in funnel(inside.lazy(), steps, window).steps]
    assert run_duckdb(df, steps, window, start=start, end=end) == expected


def test_microsecond_edges_survive_the_double_conversion() -> None:
    """to_unixtime returns a double; rounding must recover exact microseconds today."""
    t0 = 1_714_521_600_123_457  # not a whole millisecond
    df = frame(
        [
            Ev("at", "a", t0),
            Ev("at", "b", t0 + 60 * S),
            Ev("past", "a", t0),
            Ev("past", "b", t0 + 60 * S + 1),
        ]
    )
    assert run_duckdb(df, ["a", "b"], timedelta(seconds=60)) == [2, 1]
