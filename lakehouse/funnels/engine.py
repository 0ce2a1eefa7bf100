"""The Polars funnel engine: vectorised, one pass of whole-column operations per step.

**Window mode** replicates ClickHouse's ``windowFunnel(window)`` (default options)
exactly. ClickHouse keeps, per user, an entry ``(timestamp, step)`` for every event and
every step the event matches, sorts the entries by ``(timestamp, step)``, and walks them
keeping, per level ``k``, the first timestamp of the latest chain that reached ``k``:
a step-1 entry (re)starts level 1 with its own timestamp; a step-``k`` entry extends the
level-``k-1`` chain when one exists and ``timestamp <= first + window``, carrying
``first``. The user's level is the highest level ever set.

Here that walk is a forward fill: sort the entries by ``(group, user, timestamp, step)``;
the level-``k`` state at each row is the last value of "``first`` where a chain reached
``k`` on this row", forward-filled, with a sentinel written on each user's first row so
nothing leaks from one user to the next. One fill per level, no Python loop over events.

**Strict mode** walks *all* the user's events in ``(client_ts, event_id)`` order. A chain
may pass from step ``k`` to step ``k+1`` only if every event strictly between them is a
step-``k+1`` event (``event_type`` equal to step ``k+1``); any other event of the user in
between breaks it. Every step must be within ``window`` of the chain's first step. The
state of level ``k`` is the same forward fill, additionally reset on every event that is
not a step-``k+1`` event. The state kept is the latest start, which is also the best one
(see docs/analysis.md for the argument).

For both modes a user's **time to step k** is taken on the first row where the user
reaches level ``k``: that row's timestamp minus the first timestamp of the chain it
extends.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING

from lakehouse.errors import UsageError
from lakehouse.funnels.spec import FunnelSpec, Mode, breakdown_expr, funnel_spec

if TYPE_CHECKING:
    import polars as pl

log = logging.getLogger(__name__)

_SENTINEL = -(2**63)  # "no open chain": below every epoch microsecond value
GROUP = "breakdown"
USER = "user_id"


def _needed(spec: FunnelSpec) -> tuple[str, ...]:
    base = (USER, "event_type", "client_ts")
    return (*base, "event_id") if spec.mode == "strict" else base


def _base(lf: pl.LazyFrame, spec: FunnelSpec, grouped: bool) -> pl.LazyFrame:
    """The columns the engine needs: group, user, event_type, _ts (epoch µs)[, event_id]."""
    import polars as pl

    names = lf.collect_schema().names()
    missing = [c for c in _needed(spec) if c not in names]
    if missing:
        raise UsageError(f"the events frame lacks the column(s) {', '.join(missing)}")
    cols = [
        pl.col(USER).cast(pl.String),
        pl.col("event_type").cast(pl.String),
        pl.col("client_ts").dt.epoch("us").alias("_ts"),
    ]
    if spec.mode == "strict":
        cols.append(pl.col("event_id").cast(pl.String))
    if grouped:
        assert spec.breakdown is not None
        cols.insert(0, breakdown_expr(spec.breakdown, names).alias(GROUP))
    return lf.select(cols)


def _first_row(grouped: bool) -> pl.Expr:
    import polars as pl

    change = pl.col(USER).ne_missing(pl.col(USER).shift(1))
    if grouped:
        change = change | pl.col(GROUP).ne_missing(pl.col(GROUP).shift(1))
    return change.fill_null(True)


def _window_rows(lf: pl.LazyFrame, spec: FunnelSpec, keys: list[str]) -> pl.LazyFrame:
    """Entries ``(keys, _ts, _idx)``: one per event and matching step, sorted."""
    import polars as pl

    steps = pl.LazyFrame(
        {"event_type": list(spec.steps), "_idx": list(range(len(spec.steps)))},
        schema={"event_type": pl.String, "_idx": pl.Int32},
    )
    entries = lf.filter(pl.col("event_type").is_in(sorted(set(spec.steps)))).join(
        steps, on="event_type", how="inner"
    )
    return entries.sort([*keys, "_ts", "_idx"])


def _window_levels(lf: pl.LazyFrame, spec: FunnelSpec, grouped: bool) -> pl.LazyFrame:
    import polars as pl

    keys = [GROUP, USER] if grouped else [USER]
    frame = _window_rows(lf, spec, keys).with_columns(
        _start=_first_row(grouped), _n0=pl.col("_idx") == 0
    )
    first = pl.col("_ts")
    for k in range(len(spec.steps) - 1):
        frame = frame.with_columns(
            (
                pl.when(pl.col(f"_n{k}"))
                .then(first)
                .when(pl.col("_start"))
                .then(pl.lit(_SENTINEL, pl.Int64))
                .otherwise(None)
                .forward_fill()
            ).alias(f"_f{k + 1}")
        )
        first = pl.col(f"_f{k + 1}")
        frame = frame.with_columns(
            (
                (pl.col("_idx") == k + 1)
                & (first > _SENTINEL)
                & (pl.col("_ts") - first <= spec.window_us)
            ).alias(f"_n{k + 1}")
        )
    return frame


def _strict_levels(lf: pl.LazyFrame, spec: FunnelSpec, grouped: bool) -> pl.LazyFrame:
    import polars as pl

    keys = [GROUP, USER] if grouped else [USER]
    frame = lf.sort([*keys, "_ts", "event_id"]).with_columns(
        _start=_first_row(grouped), _n0=pl.col("event_type") == spec.steps[0]
    )
    first = pl.col("_ts")
    for k in range(len(spec.steps) - 1):
        is_next = pl.col("event_type") == spec.steps[k + 1]
        state = (
            pl.when(pl.col(f"_n{k}"))
            .then(first)
            .when(pl.col("_start") | ~is_next)
            .then(pl.lit(_SENTINEL, pl.Int64))
            .otherwise(None)
            .forward_fill()
        )
        # the level-k chain still open on the previous row (same user: not a first row)
        frame = frame.with_columns(state.shift(1).alias(f"_f{k + 1}"))
        first = pl.col(f"_f{k + 1}")
        frame = frame.with_columns(
            (
                is_next
                & ~pl.col("_start")
                & (first > _SENTINEL)
                & (pl.col("_ts") - first <= spec.window_us)
            )
            .fill_null(False)
            .alias(f"_n{k + 1}")
        )
    return frame


def _reach(frame: pl.LazyFrame, spec: FunnelSpec, keys: list[str]) -> pl.LazyFrame:
    """Per user: ``us_to_step_k``, the µs from the chain's first step to step k on the
    first row where the user reached k (null if never), and ``level`` (steps reached)."""
    import polars as pl

    k_steps = len(spec.steps)
    names = [f"us_to_step_{k}" for k in range(1, k_steps + 1)]
    reach = [
        pl.when(pl.col(f"_n{k}"))
        .then(pl.col("_ts") - (pl.col("_ts") if k == 0 else pl.col(f"_f{k}")))
        .alias(names[k])
        for k in range(k_steps)
    ]
    return (
        frame.filter(pl.any_horizontal(pl.col(f"_n{k}") for k in range(k_steps)))
        .select(*keys, *reach)
        .group_by(keys)
        # rows keep their order inside a group: the first non-null is the earliest reach
        .agg(pl.col(n).drop_nulls().first() for n in names)
        .with_columns(
            level=pl.sum_horizontal(pl.col(n).is_not_null() for n in names).cast(pl.Int64)
        )
        .filter(pl.col("level") > 0)
        .select(*keys, "level", *names)
    )


def levels_for(lf: pl.LazyFrame, spec: FunnelSpec, *, grouped: bool) -> pl.LazyFrame:
    """Per user (and breakdown value when ``grouped``, column ``breakdown`` first) who
    reached step 1: ``level`` and ``us_to_step_1 .. us_to_step_K``."""
    base = _base(lf, spec, grouped)
    keys = [GROUP, USER] if grouped else [USER]
    if spec.mode == "strict":
        return _reach(_strict_levels(base, spec, grouped), spec, keys)
    return _reach(_window_levels(base, spec, grouped), spec, keys)


def user_levels(
    lf: pl.LazyFrame,
    steps: Sequence[str],
    window: timedelta,
    *,
    mode: Mode = "window",
    breakdown: str | None = None,
) -> pl.LazyFrame:
    """One row per user who reached the first step (per breakdown value, in column
    ``breakdown``, when asked): ``level`` — the furthest step reached, the value
    ClickHouse's ``windowFunnel`` returns in window mode — and ``us_to_step_1..K``."""
    spec = funnel_spec(steps, window, mode, breakdown)
    return levels_for(lf, spec, grouped=breakdown is not None)
