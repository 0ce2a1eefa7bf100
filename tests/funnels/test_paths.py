"""Both orderings of the Polars engine (one packed sort, or the row sorts it falls back
to) against hand-computed results and the plain-Python definitions in
tests/analysis/reference.py."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any
from unittest import mock

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lakehouse.funnels import collect, funnel, user_levels
from tests.analysis.reference import (
    Ev,
    chains_by_definition,
    clickhouse_walk,
    frame,
    strict_by_definition,
)

S = 1_000_000
T0 = 1_714_521_600 * S
STEPS = [f"s{k}" for k in range(40)]  # 40 steps: 6 bits of step index


@contextmanager
def ordering(path: str) -> Iterator[list[object]]:
    """Run the engine with ``path`` ("packed" or "rows"); yields what each call of the
    packed ordering returned (the packed path must have run, and ordered something)."""
    calls: list[object] = []
    real = collect.packed_order

    def spy(*args: Any, **kw: Any) -> object:
        calls.append(real(*args, **kw) if path == "packed" else None)
        return calls[-1]

    with mock.patch.object(collect, "packed_order", spy):
        yield calls
    if path == "packed":
        assert calls and all(c is not None for c in calls)


def _forty_steps() -> pl.DataFrame:
    events = []
    for k, step in enumerate(STEPS):
        events.append(Ev("full", step, T0 + k * S))
        if step != "s20":
            events.append(Ev("gap", step, T0 + k * S))
        events.append(Ev("late", step, T0 + k * 100 * S))  # the window (1 h) ends at s36
        events.append(Ev("ties", STEPS[-1 - k], T0))  # all at once, listed backwards
        events.append(Ev("restart", step, T0 + 5_000 * S + k * S))
    events += [Ev("restart", "s0", T0), Ev("restart", "s1", T0 + S), Ev("none", "s5", T0)]
    return frame(events)


@pytest.mark.parametrize("path", ["packed", "rows"])
def test_a_forty_step_funnel_by_hand(path: str) -> None:
    df = _forty_steps()
    with ordering(path):
        got = user_levels(df.lazy(), STEPS, timedelta(hours=1))
        users = [s.users for s in funnel(df.lazy(), STEPS, timedelta(hours=1)).steps]
    rows = {r["user_id"]: r for r in got.to_dicts()}
    assert {u: r["level"] for u, r in rows.items()} == {
        "full": 40,
        "gap": 20,
        "late": 37,
        "ties": 40,
        "restart": 40,
    }
    # times to a step are taken when the user first reached it: restart reached step 2
    # in its first chain (1 s), steps 3..40 in its second (from s0 at 5,000 s)
    assert [rows["restart"][f"us_to_step_{k}"] for k in (1, 2, 3, 40)] == [0, S, 2 * S, 39 * S]
    assert rows["late"]["us_to_step_37"] == 3_600 * S and rows["late"]["us_to_step_38"] is None
    assert rows["ties"]["us_to_step_40"] == 0
    assert users == [5] * 20 + [4] * 17 + [3] * 3


def test_centuries_of_timestamps_equal_the_clickhouse_loop() -> None:
    """Timestamps from 1900 to 9000 need too many bits as offsets: the packed path ranks
    them instead, and still computes windowFunnel."""
    year = 365 * 86_400 * S
    first = -70 * year  # 1900
    events = [
        Ev(f"u{u}", "abc"[(u + k) % 3], first + ((u * 7_919 + k * 104_729) % 7_100) * year + k)
        for u in range(40)
        for k in range(12)
    ]
    events += [Ev("u1", "a", T0), Ev("u1", "b", T0), Ev("u1", "c", T0 + 1)]
    df = frame(events)
    for window in (
        timedelta(days=365 * 500),
        timedelta(days=365 * 3_000),
        timedelta(microseconds=1),
    ):
        window_us = window // timedelta(microseconds=1)
        with ordering("packed"):
            got = user_levels(df.lazy(), ["a", "b", "c"], window)
        names = ["us_to_step_1", "us_to_step_2", "us_to_step_3"]
        assert {r["user_id"]: (r["level"], [r[n] for n in names]) for r in got.to_dicts()} == (
            clickhouse_walk(df, ["a", "b", "c"], window_us)
        )


_event = st.builds(
    lambda user, kind, sec, us: Ev(f"u{user}", kind, T0 + sec * S + us, session=f"s{user % 2}"),
    st.integers(0, 3),
    st.sampled_from("abcxy"),
    st.integers(0, 12),
    st.sampled_from((0, 0, 1)),
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    events=st.lists(_event, min_size=1, max_size=30),
    steps=st.lists(st.sampled_from("abc"), min_size=1, max_size=4),
    window=st.integers(1, 6),
    excluded=st.sampled_from(((), ("x",), ("x", "y@1"))),
    path=st.sampled_from(("packed", "rows")),
)
def test_both_orderings_equal_the_definition(
    events: list[Ev], steps: list[str], window: int, excluded: tuple[str, ...], path: str
) -> None:
    df = frame(events)
    k_steps = len(steps)
    excl = [x for x in excluded if "@" not in x or int(x.split("@")[1]) < k_steps]
    gaps: dict[int, set[str]] = {}
    for x in excl:
        kind, _, at = x.partition("@")
        for g in range(1, k_steps):
            if not at or int(at) == g:
                gaps.setdefault(g, set()).add(kind)
    expected = chains_by_definition(df, steps, [window * S] * k_steps, gaps)
    names = [f"us_to_step_{k + 1}" for k in range(k_steps)]
    with ordering(path):
        got = user_levels(df.lazy(), steps, timedelta(seconds=window), exclude=excl)
        by_session = funnel(
            df.lazy(), steps, timedelta(seconds=window), exclude=excl, breakdown="session_id"
        )
    assert {r["user_id"]: (r["level"], [r[n] for n in names]) for r in got.to_dicts()} == expected
    for group in by_session.breakdown:
        part = df.filter(pl.col("session_id") == group.value)
        levels_ = chains_by_definition(part, steps, [window * S] * k_steps, gaps)
        assert [s.users for s in group.steps] == [
            sum(1 for lvl, _ in levels_.values() if lvl >= k) for k in range(1, k_steps + 1)
        ]


_crowded = st.builds(  # two users, four seconds: many events share a time
    lambda user, kind, sec: Ev(f"u{user}", kind, T0 + sec * S),
    st.integers(0, 1),
    st.sampled_from("abcx"),
    st.integers(0, 3),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    events=st.lists(_crowded, min_size=1, max_size=30),
    steps=st.lists(st.sampled_from("abc"), min_size=1, max_size=4),
    window=st.integers(1, 6),
    ids=st.permutations([f"e{n}" for n in range(30)]),  # unique; "e10" sorts before "e2"
    path=st.sampled_from(("packed", "rows")),
)
def test_both_orderings_of_strict_mode_equal_its_definition(
    events: list[Ev], steps: list[str], window: int, ids: list[str], path: str
) -> None:
    """Strict mode walks every event in (client_ts, event_id) order: at equal times
    (most of these events share theirs with another) the event ids decide."""
    df = frame([Ev(e.user, e.kind, e.ts_us, ids[n]) for n, e in enumerate(events)])
    names = [f"us_to_step_{k + 1}" for k in range(len(steps))]
    with ordering(path):
        got = user_levels(df.lazy(), steps, timedelta(seconds=window), mode="strict")
    assert {r["user_id"]: (r["level"], [r[n] for n in names]) for r in got.to_dicts()} == (
        strict_by_definition(df, steps, window * S)
    )
