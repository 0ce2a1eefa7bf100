"""Exclusion steps, a held column and per-step windows: hand-computed cases, and the
Polars engine against plain-Python definitions that enumerate every chain
(tests/analysis/reference.py) on generated events."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lakehouse.errors import UsageError
from lakehouse.funnels import funnel, user_levels
from tests.analysis.reference import (
    Ev,
    chains_by_definition,
    chdb_levels,
    frame,
    per_held_value,
    strict_by_definition,
)

S = 1_000_000
T0 = 1_714_521_600 * S
STEPS = ["a", "b", "c"]


def levels(df: pl.DataFrame, steps: list[str] = STEPS, **kw: Any) -> dict[str, int]:
    window = kw.pop("window", timedelta(minutes=1))
    out = user_levels(df.lazy(), steps, window, **kw)
    return dict(zip(out["user_id"], out["level"], strict=True))


def at(user: str, kind: str, sec: float, session: str | None = None) -> Ev:
    return Ev(user, kind, T0 + round(sec * S), session=session)


# Hand-computed: steps a, b, c; window 60 s; x excluded.
EXCLUSION_CASE = [
    at("before", "x", 0),
    at("before", "a", 1),
    at("before", "b", 2),
    at("before", "c", 3),
    at("gap1", "a", 0),
    at("gap1", "x", 1),
    at("gap1", "b", 2),
    at("gap1", "c", 3),
    at("gap2", "a", 0),
    at("gap2", "b", 1),
    at("gap2", "x", 2),
    at("gap2", "c", 3),
    at("after", "a", 0),
    at("after", "b", 1),
    at("after", "c", 2),
    at("after", "x", 3),
    at("retry", "a", 0),
    at("retry", "x", 1),
    at("retry", "a", 2),
    at("retry", "b", 3),
    at("tie_next", "a", 0),
    at("tie_next", "x", 1),
    at("tie_next", "b", 1),
    at("tie_prev", "a", 1),
    at("tie_prev", "x", 1),
    at("tie_prev", "b", 2),
]


@pytest.mark.parametrize(
    ("exclude", "expected"),
    [
        # no exclusion: everyone reaches what window mode gives
        (
            (),
            {
                "before": 3,
                "gap1": 3,
                "gap2": 3,
                "after": 3,
                "retry": 2,
                "tie_next": 2,
                "tie_prev": 2,
            },
        ),
        # x anywhere between two steps: gap1 stops at a, gap2 at b; x before a or after c
        # does not matter; retry starts again at the second a; x at the same time as the
        # next step counts as between (ts(a) < ts(x) <= ts(b)); at the same time as the
        # previous step it does not
        (
            ("x",),
            {
                "before": 3,
                "gap1": 1,
                "gap2": 2,
                "after": 3,
                "retry": 2,
                "tie_next": 1,
                "tie_prev": 2,
            },
        ),
        (
            ("x@1",),
            {
                "before": 3,
                "gap1": 1,
                "gap2": 3,
                "after": 3,
                "retry": 2,
                "tie_next": 1,
                "tie_prev": 2,
            },
        ),
        (
            ("x@2",),
            {
                "before": 3,
                "gap1": 3,
                "gap2": 2,
                "after": 3,
                "retry": 2,
                "tie_next": 2,
                "tie_prev": 2,
            },
        ),
    ],
)
def test_exclusion_by_hand(exclude: tuple[str, ...], expected: dict[str, int]) -> None:
    assert levels(frame(EXCLUSION_CASE), exclude=exclude) == expected


def test_exclusion_keeps_a_later_clean_chain_and_counts_users() -> None:
    # a@0 b@10 x@20 b@30 c@40: the chain a->b@10 is broken by x, but a->b@30->c@40 is
    # clean (x is before b@30): level 3. Time to c: 40 s from a.
    df = frame(
        [at("u", "a", 0), at("u", "b", 10), at("u", "x", 20), at("u", "b", 30), at("u", "c", 40)]
    )
    out = user_levels(df.lazy(), STEPS, timedelta(minutes=1), exclude=["x@2"]).to_dicts()
    assert out == [
        {
            "user_id": "u",
            "level": 3,
            "us_to_step_1": 0,
            "us_to_step_2": 10 * S,
            "us_to_step_3": 40 * S,
        }
    ]
    result = funnel(frame(EXCLUSION_CASE).lazy(), STEPS, timedelta(minutes=1), exclude=["x"])
    assert [s.users for s in result.steps] == [7, 5, 2]
    assert result.to_dict()["exclude"] == ["x"]


# Hand-computed: steps a, b, c, window 60 s, held column session_id.
HOLD_CASE = [
    # one session throughout: 3
    at("same", "a", 0, "s1"),
    at("same", "b", 1, "s1"),
    at("same", "c", 2, "s1"),
    # b in another session: only a in s1, then b, c in s2 without an a: 1
    at("split", "a", 0, "s1"),
    at("split", "b", 1, "s2"),
    at("split", "c", 2, "s2"),
    # c in another session: 2
    at("late_c", "a", 0, "s1"),
    at("late_c", "b", 1, "s1"),
    at("late_c", "c", 2, "s2"),
    # the second session goes further: 3 (from s2)
    at("second", "a", 0, "s1"),
    at("second", "a", 5, "s2"),
    at("second", "b", 6, "s2"),
    at("second", "b", 7, "s1"),
    at("second", "c", 8, "s2"),
    # no session on any event: null is one value, 3
    at("none", "a", 0),
    at("none", "b", 1),
    at("none", "c", 2),
]


def test_hold_by_hand() -> None:
    df = frame(HOLD_CASE)
    assert levels(df) == {"same": 3, "split": 3, "late_c": 3, "second": 3, "none": 3}
    expected = {"same": 3, "split": 1, "late_c": 2, "second": 3, "none": 3}
    assert levels(df, hold="session_id") == expected
    assert levels(df, hold="properties.s") == expected  # the same values in JSON
    out = user_levels(df.lazy(), STEPS, timedelta(minutes=1), hold="session_id")
    second = out.filter(pl.col("user_id") == "second").to_dicts()[0]
    # step 2 first reached at b@6 in s2 (1 s after a@5), step 3 at c@8, 3 s after a@5
    assert (second["us_to_step_2"], second["us_to_step_3"]) == (1 * S, 3 * S)
    assert levels(df, hold="session_id", mode="strict") == expected
    # step 2 reached first in s1 (b@2, 2 s after a@0), later in s2 (b@4, 1 s after a@3):
    # the time is the one of the first reach, 2 s
    two = frame(
        [at("e", "a", 0, "s1"), at("e", "b", 2, "s1"), at("e", "a", 3, "s2"), at("e", "b", 4, "s2")]
    )
    [row] = user_levels(two.lazy(), ["a", "b"], timedelta(minutes=1), hold="session_id").to_dicts()
    assert row["us_to_step_2"] == 2 * S


def test_step_windows_by_hand() -> None:
    df = frame(
        [
            at("fast", "a", 0),
            at("fast", "b", 5),
            at("fast", "c", 10),
            at("slow_c", "a", 0),
            at("slow_c", "b", 5),
            at("slow_c", "c", 30),
            at("edge", "a", 0),
            at("edge", "b", 5),
            at("edge", "c", 20),
            at("slow_b", "a", 0),
            at("slow_b", "b", 50),
            at("slow_b", "c", 55),
        ]
    )
    # c within 20 s of a (exactly 20 s counts), the rest within 60 s
    got = levels(df, step_windows={3: timedelta(seconds=20)})
    assert got == {"fast": 3, "slow_c": 2, "edge": 3, "slow_b": 2}
    # b within 10 s of a: slow_b stops at a; c keeps the 60 s window
    got = levels(df, step_windows={2: timedelta(seconds=10)})
    assert got == {"fast": 3, "slow_c": 3, "edge": 3, "slow_b": 1}
    got = levels(df, mode="strict", step_windows={3: timedelta(seconds=20)})
    assert got == {"fast": 3, "slow_c": 2, "edge": 3, "slow_b": 2}


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"exclude": ["b"]}, "not one of the steps"),
        ({"exclude": ["x@3"]}, "between 1 and 2"),
        ({"exclude": ["x@two"]}, "TYPE@STEP"),
        ({"step_windows": {1: timedelta(seconds=1)}}, "from 2 to 3"),
        ({"step_windows": {2: timedelta(0)}}, "positive"),
        ({"hold": "properties.a b"}, "property key"),
        ({"hold": "no_such"}, "cannot hold by 'no_such'"),
    ],
)
def test_bad_feature_arguments(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        levels(frame([at("u", "a", 0)]), **kw)


# Generated: few users, types a b c x y, two sessions, timestamps on 7 seconds plus 0 or
# 1 µs (equal times and window edges are common).
_event = st.builds(
    lambda user, kind, sec, us, session: Ev(f"u{user}", kind, T0 + sec * S + us, session=session),
    st.integers(0, 3),
    st.sampled_from("abcxy"),
    st.integers(0, 6),
    st.sampled_from((0, 0, 1)),
    st.sampled_from(("s1", "s2", None)),
)
_events = st.lists(_event, min_size=8, max_size=30)
_steps = st.lists(st.sampled_from("abc"), min_size=1, max_size=4)
_secs = st.integers(1, 8)
_exclusions = st.one_of(
    st.just([]),
    st.lists(
        st.tuples(st.sampled_from("xy"), st.one_of(st.none(), st.integers(1, 3))),
        min_size=1,
        max_size=2,
    ),
)


def _ours(df: pl.DataFrame, steps: list[str], **kw: Any) -> dict[str, tuple[int, list[int | None]]]:
    out = user_levels(df.lazy(), steps, **kw)
    names = [f"us_to_step_{k + 1}" for k in range(len(steps))]
    return {r["user_id"]: (r["level"], [r[n] for n in names]) for r in out.to_dicts()}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    events=_events,
    steps=_steps,
    window=_secs,
    own=st.dictionaries(st.integers(2, 4), _secs, max_size=2),
    exclusions=_exclusions,
    hold=st.sampled_from((None, "session_id", "properties.s")),
    strict=st.booleans(),
)
def test_features_equal_their_definitions(
    events: list[Ev],
    steps: list[str],
    window: int,
    own: dict[int, int],
    exclusions: list[tuple[str, int | None]],
    hold: str | None,
    strict: bool,
) -> None:
    df = frame(events)
    k_steps = len(steps)
    own = {k: v for k, v in own.items() if k <= k_steps}
    excl = [
        x if at_ is None else f"{x}@{at_}" for x, at_ in exclusions if at_ is None or at_ < k_steps
    ]
    windows = [window * S] + [own.get(k, window) * S for k in range(2, k_steps + 1)]
    gaps: dict[int, set[str]] = {}
    for x, at_ in exclusions:
        for g in range(1, k_steps):
            if at_ is None or at_ == g:
                gaps.setdefault(g, set()).add(x)

    def one(part: pl.DataFrame, ends: dict[str, list[int | None]]) -> Any:
        if strict:
            assert not own  # strict_by_definition has one window
            return strict_by_definition(part, steps, window * S, ends)
        return chains_by_definition(part, steps, windows, gaps, ends)

    if strict:
        own = {}
        windows = [window * S] * k_steps
    # properties.s carries the same values as session_id (null: no key)
    held = {None: "user_id", "properties.s": "session_id"}.get(hold, hold)
    expected = per_held_value(df, held or "user_id", one)
    got = _ours(
        df,
        steps,
        window=timedelta(seconds=window),
        mode="strict" if strict else "window",
        exclude=excl,
        hold=hold,
        step_windows={k: timedelta(seconds=v) for k, v in own.items()},
    )
    assert got == expected


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=_events, steps=_steps, window=_secs)
def test_chain_definition_without_options_is_clickhouse(
    events: list[Ev], steps: list[str], window: int
) -> None:
    """The enumerating definition itself, with no exclusion and one window, is
    windowFunnel: the reference the features are checked against is anchored to chdb."""
    df = frame(events)
    got = chains_by_definition(df, steps, [window * S] * len(steps), {})
    assert {u: lvl for u, (lvl, _) in got.items()} == chdb_levels(df, steps, window * S)
