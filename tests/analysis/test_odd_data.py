"""The read API and the funnel engine on data unlike the demo: null and missing columns,
a step nobody reached, an empty range. Each expectation is counted by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from lakehouse.errors import UsageError
from lakehouse.funnels import funnel, user_levels
from lakehouse.read import late_share_frame, lateness_frame
from lakehouse.read.explore import (
    MISSING_LABEL,
    frequent_event_types,
    label_missing,
    parse_range,
    parse_steps,
)
from lakehouse.settings import Settings

T = datetime(2024, 5, 1, 10, tzinfo=UTC)
M = timedelta(minutes=1)
H = timedelta(hours=1)


def frame(rows: list[tuple[str, str, str, timedelta, timedelta, str | None]]) -> pl.LazyFrame:
    """(event_id, user, type, client offset from T, delivery delay, platform)."""
    return pl.DataFrame(
        {
            "event_id": [r[0] for r in rows],
            "user_id": [r[1] for r in rows],
            "event_type": [r[2] for r in rows],
            "client_ts": [T + r[3] for r in rows],
            "server_ts": [T + r[3] + r[4] for r in rows],
            "platform": [r[5] for r in rows],
        },
        schema_overrides={"platform": pl.String},
    ).lazy()


ROWS = [
    # 10:00 hour closes 11:00, late from 12:00 (allowed lateness 1 h)
    ("a", "u1", "open", 0 * M, 5 * M, "ios"),
    ("b", "u1", "view", 2 * M, 3 * H, "ios"),  # late
    ("c", "u2", "open", 1 * M, 1 * M, None),
    ("d", "u2", "view", 3 * M, 2 * H, None),  # 10:03 + 2 h = 12:03: late
    ("e", "u3", "open", 4 * M, 30 * M, None),
    ("f", "u3", "open", 70 * M, 10 * M, "web"),
]


def test_late_share_keeps_events_without_a_value_as_their_own_group() -> None:
    out = late_share_frame(frame(ROWS), "platform", allowed_lateness=H).collect()
    got = {
        row["platform"]: (row["events"], row["late_events"]) for row in out.iter_rows(named=True)
    }
    assert got == {None: (3, 1), "ios": (2, 1), "web": (1, 0)}
    assert out["platform"].to_list() == [None, "ios", "web"]  # most events first
    labelled = out.select(label_missing("platform"))["platform"].to_list()
    assert labelled == [MISSING_LABEL, "ios", "web"]


def test_late_share_on_a_column_with_no_value_at_all_and_on_a_missing_one() -> None:
    nothing = frame([(*r[:5], None) for r in ROWS])
    out = late_share_frame(nothing, "platform", allowed_lateness=H).collect()
    assert out.select("platform", "events", "late_events").rows() == [(None, 6, 2)]
    with pytest.raises(UsageError, match="no column 'device'"):
        late_share_frame(frame(ROWS), "device", allowed_lateness=H)


def test_an_empty_range_gives_empty_frames_not_errors() -> None:
    empty = frame(ROWS).filter(pl.col("client_ts") > T + 10 * H)
    assert lateness_frame(empty, allowed_lateness=H).collect().height == 0
    assert late_share_frame(empty, "platform", allowed_lateness=H).collect().height == 0
    assert frequent_event_types(empty) == []
    result = funnel(empty, ["open", "view"], H)
    assert [s.users for s in result.steps] == [0, 0]
    assert all(s.conversion_from_first is None for s in result.steps)
    assert user_levels(empty, ["open", "view"], H).height == 0


def test_a_step_nobody_reached() -> None:
    steps = ["open", "view", "teleport"]
    levels = user_levels(frame(ROWS), steps, H)
    # u1: open 10:00 -> view 10:02; u2: open 10:01 -> view 10:03; u3 only opens
    assert dict(levels.select("user_id", "level").rows()) == {"u1": 2, "u2": 2, "u3": 1}
    assert levels["us_to_step_3"].null_count() == levels.height
    assert sorted(levels["us_to_step_2"].drop_nulls().to_list()) == [120_000_000, 120_000_000]
    result = funnel(frame(ROWS), steps, H)
    assert [s.users for s in result.steps] == [3, 2, 0]
    assert result.steps[2].median_seconds_to_step is None
    assert result.steps[2].conversion_from_previous == 0.0
    by = funnel(frame(ROWS), steps, H, breakdown="platform")
    users = {g.value: [s.users for s in g.steps] for g in by.breakdown}
    # per platform: ios u1 open+view; none: u2 open+view, u3 open; web: u3 open
    assert users == {"ios": [1, 1, 0], None: [2, 1, 0], "web": [1, 0, 0]}


def test_default_steps_are_the_most_frequent_types() -> None:
    assert frequent_event_types(frame(ROWS)) == ["open", "view"]
    assert frequent_event_types(frame(ROWS), 1) == ["open"]
    many = frame([(f"x{i}", "u", t, i * M, M, None) for i, t in enumerate("cbbaaa")])
    assert frequent_event_types(many, 2) == ["a", "b"]
    ties = frame([(f"y{i}", "u", t, i * M, M, None) for i, t in enumerate("zyx")])
    assert frequent_event_types(ties) == ["x", "y", "z"]


def test_parameters_from_text() -> None:
    assert parse_steps(None) is None and parse_steps("  ") is None
    assert parse_steps("open, view ,buy") == ["open", "view", "buy"]
    with pytest.raises(UsageError):
        parse_steps("open,,buy")
    assert parse_range("", None) == (None, None)
    assert parse_range("2024-05-01T10:00Z", "2024-05-02") == (
        T,
        datetime(2024, 5, 2, tzinfo=UTC),
    )
    with pytest.raises(UsageError):
        parse_range("2024-05-02", "2024-05-01")
    with pytest.raises(UsageError):
        parse_range("tomorrow", None)


def test_late_share_on_a_table_whose_column_came_later(sqlite_settings: Settings) -> None:
    """Files written before ``platform`` existed read it as null: their events are one
    group, counted, beside the platforms of the later files."""
    import lakehouse
    from tests.analysis.conftest import ev, write

    write(sqlite_settings, [ev(f"a{i}", "u1", "open", i * M, delay=3 * H) for i in range(3)])
    write(sqlite_settings, [ev(f"b{i}", "u2", "open", i * M, platform="tv") for i in range(2)])
    out = lakehouse.late_share("platform", sqlite_settings)
    assert out.select("platform", "events", "late_events").rows() == [(None, 3, 3), ("tv", 2, 0)]
    result = lakehouse.funnel(
        lakehouse.events(sqlite_settings), ["open", "x"], H, breakdown="platform"
    )
    assert {g.value: g.steps[0].users for g in result.breakdown} == {None: 1, "tv": 1}
