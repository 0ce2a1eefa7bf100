"""The funnel engine against independent oracles: ClickHouse's own ``windowFunnel``
(run in-process by chdb) on generated data, and plain-Python versions of each
definition (tests/analysis/reference.py), per user."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lakehouse.demo import FUNNEL, DemoSpec, generate_events
from lakehouse.funnels import funnel, user_levels
from tests.analysis.reference import (
    Ev,
    chdb_levels,
    clickhouse_walk,
    frame,
    strict_by_definition,
)

S = 1_000_000
T0 = 1_714_521_600 * S

# Few users, few types, timestamps from a small set of seconds plus 0, 1 or 999,999 µs:
# equal timestamps, window edges and repeated events are all common.
_event = st.builds(
    lambda user, kind, sec, us: Ev(f"u{user}", kind, T0 + sec * S + us),
    st.integers(0, 3),
    st.sampled_from("abcx"),
    st.integers(0, 20),
    st.sampled_from((0, 0, 1, 999_999)),
)
_events = st.lists(_event, max_size=40)
_steps = st.lists(st.sampled_from("abc"), min_size=1, max_size=4)
_window = st.builds(
    lambda sec, us: sec * S + us, st.integers(0, 10), st.sampled_from((0, 1, 999_999))
).filter(lambda w: w > 0)


def ours(
    df: pl.DataFrame, steps: list[str], window_us: int, mode: str = "window"
) -> dict[str, tuple[int, list[int | None]]]:
    out = user_levels(df.lazy(), steps, timedelta(microseconds=window_us), mode=mode)  # type: ignore[arg-type]
    names = [f"us_to_step_{k + 1}" for k in range(len(steps))]
    return {r["user_id"]: (r["level"], [r[n] for n in names]) for r in out.to_dicts()}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=_events, steps=_steps, window_us=_window)
def test_window_mode_equals_clickhouse(events: list[Ev], steps: list[str], window_us: int) -> None:
    df = frame(events)
    got = ours(df, steps, window_us)
    assert {u: level for u, (level, _) in got.items()} == chdb_levels(df, steps, window_us)
    # users per step as windowFunnel's levels count them
    result = funnel(df.lazy(), steps, timedelta(microseconds=window_us))
    levels = list(got.values())
    assert [s.users for s in result.steps] == [
        sum(1 for level, _ in levels if level >= k) for k in range(1, len(steps) + 1)
    ]


@settings(max_examples=300, deadline=None)
@given(events=_events, steps=_steps, window_us=_window)
def test_both_modes_equal_their_python_definitions(
    events: list[Ev], steps: list[str], window_us: int
) -> None:
    df = frame(events)
    assert ours(df, steps, window_us) == clickhouse_walk(df, steps, window_us)
    assert ours(df, steps, window_us, "strict") == strict_by_definition(df, steps, window_us)


@settings(max_examples=100, deadline=None)
@given(events=_events, steps=_steps, window_us=_window)
def test_strict_never_exceeds_window_mode(
    events: list[Ev], steps: list[str], window_us: int
) -> None:
    df = frame(events)
    window = ours(df, steps, window_us)
    for user, (level, _) in ours(df, steps, window_us, "strict").items():
        assert level <= window[user][0]


def demo_frame(seed: int, events: int = 20_000) -> pl.DataFrame:
    rows = generate_events(DemoSpec(events=events, seed=seed), datetime(2024, 5, 4, tzinfo=UTC))
    return pl.DataFrame(
        {
            k: [r[k] for r in rows]
            for k in ("event_id", "user_id", "event_type", "client_ts", "platform")
        }
    ).with_columns(pl.col("client_ts").str.to_datetime(time_zone="UTC").dt.cast_time_unit("us"))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_demo_data_equals_clickhouse(seed: int) -> None:
    df = demo_frame(seed)
    funnels = [
        list(FUNNEL[:4]),
        list(FUNNEL),
        ["app_open", "search", "view_product", "search", "add_to_cart"],  # repeated step
        ["view_product", "view_product", "checkout"],
    ]
    for steps in funnels:
        for window in (
            timedelta(seconds=90),
            timedelta(minutes=10),
            timedelta(hours=1),
            timedelta(days=1),
        ):
            w = window // timedelta(microseconds=1)
            got = {u: level for u, (level, _) in ours(df, steps, w).items()}
            assert got == chdb_levels(df, steps, w), (steps, window)


def test_demo_breakdown_equals_clickhouse_per_platform() -> None:
    df = demo_frame(4)
    steps, window = list(FUNNEL[:4]), timedelta(minutes=10)
    result = funnel(df.lazy(), steps, window, breakdown="platform")
    assert {g.value for g in result.breakdown} == {"ios", "android", "web"}
    for group in result.breakdown:
        part = df.filter(pl.col("platform") == group.value)
        levels = chdb_levels(part, steps, window // timedelta(microseconds=1))
        assert [s.users for s in group.steps] == [
            sum(1 for v in levels.values() if v >= k) for k in range(1, len(steps) + 1)
        ]
    # and a realistic funnel: fewer users at each step, and not trivially
    users = [s.users for s in result.steps]
    assert users == sorted(users, reverse=True) and users[-1] < users[0]


def test_users_sharing_a_hash_key_are_recomputed_exactly(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Rows are sorted by a 64-bit hash of the user; if two users share one, the engine
    notices and computes again with the user ids themselves. Force every user to collide."""
    from lakehouse.funnels import levels

    df = demo_frame(6, events=3_000)
    steps, window = list(FUNNEL[:3]), timedelta(minutes=10)
    honest = ours(df, steps, window // timedelta(microseconds=1))
    breakdown = funnel(df.lazy(), steps, window, breakdown="platform").to_dict()
    monkeypatch.setattr(levels, "hashed_user", lambda user: pl.lit(7, pl.UInt64))
    with caplog.at_level("WARNING", logger="lakehouse.funnels.levels"):
        assert ours(df, steps, window // timedelta(microseconds=1)) == honest
        assert funnel(df.lazy(), steps, window, breakdown="platform").to_dict() == breakdown
    assert "share a hash key" in caplog.text
    assert {u: v for u, (v, _) in honest.items()} == chdb_levels(
        df, steps, window // timedelta(microseconds=1)
    )
