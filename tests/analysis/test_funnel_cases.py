"""Small hand-computed funnels pinning each rule: window edges, equal timestamps,
restarts, repeated steps, strict order, time to convert, breakdown, validation."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
import pytest

from lakehouse.errors import UsageError
from lakehouse.funnels import funnel, user_levels
from tests.analysis.reference import Ev, frame

S = 1_000_000  # one second in µs
T0 = 1_714_521_600 * S  # 2024-05-01T00:00:00Z
W = timedelta(seconds=60)


def events(*specs: tuple[str, str, float]) -> pl.LazyFrame:
    """(user, event_type, seconds after T0) -> events, ids in the order given."""
    return frame(
        Ev(u, k, T0 + round(sec * S), f"e{i:03d}") for i, (u, k, sec) in enumerate(specs)
    ).lazy()


def levels(
    lf: pl.LazyFrame, steps: list[str], window: timedelta = W, mode: str = "window"
) -> dict[str, int]:
    out = user_levels(lf, steps, window, mode=mode)  # type: ignore[arg-type]
    return dict(zip(out["user_id"], out["level"], strict=True))


def users(lf: pl.LazyFrame, steps: list[str], window: timedelta = W, **kw: object) -> list[int]:
    return [s.users for s in funnel(lf, steps, window, **kw).steps]  # type: ignore[arg-type]


def test_window_edges_exactly_at_and_one_microsecond_past() -> None:
    lf = events(
        ("at", "a", 0),
        ("at", "b", 60),  # exactly the window after: reached
        ("past", "a", 0),
        ("past", "b", 60.000001),  # one µs past: not reached
    )
    assert levels(lf, ["a", "b"]) == {"at": 2, "past": 1}
    assert levels(lf, ["a", "b"], mode="strict") == {"at": 2, "past": 1}
    assert users(lf, ["a", "b"]) == [2, 1]
    edge = funnel(lf, ["a", "b"], W).steps[1]
    assert edge.median_seconds_to_step == 60.0


def test_equal_timestamps_follow_step_order_in_window_mode() -> None:
    # ClickHouse sorts entries by (timestamp, step): b listed first at the same instant
    # still counts after a. Strict mode orders by (client_ts, event_id): e000 (b) first.
    lf = events(("u", "b", 5), ("u", "a", 5))
    assert levels(lf, ["a", "b"]) == {"u": 2}
    assert levels(lf, ["a", "b"], mode="strict") == {"u": 1}


def test_a_later_first_step_restarts_the_chain() -> None:
    # a@0, a@50, b@100 (window 60): the a@50 restart makes b reachable, 50 s after it
    lf = events(("u", "a", 0), ("u", "a", 50), ("u", "b", 100))
    assert levels(lf, ["a", "b"]) == {"u": 2}
    assert funnel(lf, ["a", "b"], W).steps[1].median_seconds_to_step == 50.0


def test_window_mode_keeps_the_latest_chain_per_level() -> None:
    # a@0 b@10 a@20 b@25 c@75: level 2 is re-reached from a@20, so c@75 (55 s after a@20)
    # is within 60 s; from a@0 it would not be.
    lf = events(("u", "a", 0), ("u", "b", 10), ("u", "a", 20), ("u", "b", 25), ("u", "c", 75))
    assert levels(lf, ["a", "b", "c"]) == {"u": 3}
    steps = funnel(lf, ["a", "b", "c"], W).steps
    assert [s.median_seconds_to_step for s in steps] == [0.0, 10.0, 55.0]


def test_other_events_between_steps_only_matter_in_strict_mode() -> None:
    lf = events(
        ("gap", "a", 0),
        ("gap", "b", 1),
        ("gap", "x", 2),
        ("gap", "c", 3),  # x breaks b -> c
        ("rep", "a", 0),
        ("rep", "b", 1),
        ("rep", "b", 2),
        ("rep", "c", 3),  # repeats of b are fine
        ("two_a", "a", 0),
        ("two_a", "a", 1),
        ("two_a", "b", 2),  # a -> a breaks, a@1 -> b ok
        ("noise", "a", 0),
        ("noise", "x", 1),
        ("noise", "b", 2),  # nothing after a
    )
    assert levels(lf, ["a", "b", "c"]) == {"gap": 3, "rep": 3, "two_a": 2, "noise": 2}
    assert levels(lf, ["a", "b", "c"], mode="strict") == {
        "gap": 2,
        "rep": 3,
        "two_a": 2,
        "noise": 1,
    }
    strict = funnel(lf, ["a", "b", "c"], W, mode="strict").steps
    assert [s.users for s in strict] == [4, 3, 1]
    # two_a: timed from the a@1 that starts the strict chain
    assert strict[1].median_seconds_to_step == 1.0


def test_repeated_step_names() -> None:
    # window mode: one event may fill two equal consecutive steps (ClickHouse does so);
    # strict mode needs two distinct events.
    one = events(("u", "a", 0))
    assert levels(one, ["a", "a"]) == {"u": 2}
    assert levels(one, ["a", "a"], mode="strict") == {"u": 1}
    two = events(("u", "a", 0), ("u", "b", 1), ("u", "a", 2))
    assert levels(two, ["a", "b", "a"]) == {"u": 3}
    assert levels(two, ["a", "b", "a"], mode="strict") == {"u": 3}


def test_conversion_and_median_time_to_convert() -> None:
    lf = events(
        ("u1", "a", 0),
        ("u1", "b", 10),
        ("u1", "c", 20),
        ("u2", "a", 0),
        ("u2", "b", 30),
        ("u3", "a", 0),
        ("u3", "b", 50),
        ("u4", "a", 0),
        ("u5", "b", 0),
        ("u5", "c", 1),  # never did a: not in the funnel at all
    )
    result = funnel(lf, ["a", "b", "c"], W)
    assert result.to_dict()["steps"] == [
        {
            "step": "a",
            "users": 4,
            "conversion_from_previous": 1.0,
            "conversion_from_first": 1.0,
            "median_seconds_to_step": 0.0,
        },
        {
            "step": "b",
            "users": 3,
            "conversion_from_previous": 0.75,
            "conversion_from_first": 0.75,
            "median_seconds_to_step": 30.0,
        },
        {
            "step": "c",
            "users": 1,
            "conversion_from_previous": pytest.approx(1 / 3),
            "conversion_from_first": 0.25,
            "median_seconds_to_step": 20.0,
        },
    ]
    # the time to a step is taken the first time the user reaches it
    again = events(("u", "a", 0), ("u", "b", 40), ("u", "a", 100), ("u", "b", 101))
    assert funnel(again, ["a", "b"], W).steps[1].median_seconds_to_step == 40.0


def test_nobody_reaches_gives_zero_users_and_no_ratios() -> None:
    result = funnel(events(("u", "x", 0)), ["a", "b"], W)
    assert [
        (s.users, s.conversion_from_previous, s.median_seconds_to_step) for s in result.steps
    ] == [(0, None, None), (0, None, None)]
    empty = funnel(events(), ["a"], W)
    assert empty.steps[0].users == 0


def test_breakdown_by_column_and_by_property() -> None:
    df = frame(
        [
            Ev("u1", "a", T0, "e1"),
            Ev("u1", "b", T0 + S, "e2"),
            Ev("u2", "a", T0, "e3"),
            Ev("u2", "b", T0 + S, "e4"),
            Ev("u3", "a", T0, "e5"),
        ]
    ).with_columns(
        platform=pl.Series(["ios", "ios", "web", "ios", None]),
        properties=pl.Series(['{"src":"ad"}', '{"src":"ad"}', '{"src":"seo"}', "{}", None]),
    )
    result = funnel(df.lazy(), ["a", "b"], W, breakdown="platform")
    assert [s.users for s in result.steps] == [3, 2]
    # per value, over that value's events only: u2's a is on web, its b on ios
    groups = {g.value: [s.users for s in g.steps] for g in result.breakdown}
    assert groups == {"ios": [1, 1], "web": [1, 0], None: [1, 0]}
    # most users at step 1 first, then by value, no value last
    assert [g.value for g in result.breakdown] == ["ios", "web", None]
    by_src = funnel(df.lazy(), ["a", "b"], W, breakdown="properties.src")
    assert {g.value: [s.users for s in g.steps] for g in by_src.breakdown} == {
        "ad": [1, 1],
        "seo": [1, 0],
        None: [1, 0],
    }
    d = by_src.to_dict()
    assert d["breakdown_by"] == "properties.src"
    assert {"value": "ad", "steps": [s.to_dict() for s in by_src.breakdown[0].steps]} in d[
        "breakdown"
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"steps": []}, "at least one step"),
        ({"steps": "a,b"}, "not the string"),
        ({"steps": ["a", ""]}, "non-empty"),
        ({"window": timedelta(0)}, "must be positive"),
        ({"window": timedelta(seconds=-5)}, "must be positive"),
        ({"mode": "fuzzy"}, "unknown funnel mode"),
        ({"breakdown": "nope"}, "cannot break down by 'nope'"),
        ({"breakdown": "properties.a b"}, "property key"),
    ],
)
def test_bad_arguments_are_usage_errors(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"steps": ["a", "b"], "window": W, **kwargs}
    with pytest.raises(UsageError, match=message):
        funnel(events(("u", "a", 0)), args.pop("steps"), args.pop("window"), **args)  # type: ignore[arg-type]


def test_strict_mode_needs_event_ids() -> None:
    lf = events(("u", "a", 0)).drop("event_id")
    assert levels(lf, ["a"]) == {"u": 1}
    with pytest.raises(UsageError, match="event_id"):
        funnel(lf, ["a"], W, mode="strict")
