"""``funnel()``: users reaching each step, conversion and time to convert, with an
optional breakdown."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING

from lakehouse.funnels.collect import collect_levels
from lakehouse.funnels.levels import GROUP
from lakehouse.funnels.result import (
    FunnelGroup,
    FunnelResult,
    FunnelStep,
    build_steps,
    options_of,
)
from lakehouse.funnels.spec import Exclusion, FunnelSpec, Mode, funnel_spec

if TYPE_CHECKING:
    import polars as pl

log = logging.getLogger(__name__)


def _summary(levels: pl.DataFrame, spec: FunnelSpec, by: list[str]) -> pl.DataFrame:
    """Users and median seconds per step (per ``by`` group) from per-user levels."""
    import polars as pl

    aggs: list[pl.Expr] = []
    for k in range(len(spec.steps)):
        col = pl.col(f"us_to_step_{k + 1}")
        aggs.append(col.is_not_null().sum().cast(pl.Int64).alias(f"users_{k + 1}"))
        aggs.append((col.median() / 1e6).alias(f"median_{k + 1}"))
    if by:
        return levels.group_by(by).agg(aggs)
    return levels.select(aggs)


def _steps(row: dict[str, object], spec: FunnelSpec) -> tuple[FunnelStep, ...]:
    k_range = range(1, len(spec.steps) + 1)
    users = [int(row[f"users_{k}"] or 0) for k in k_range]  # type: ignore[call-overload]
    medians = [row[f"median_{k}"] for k in k_range]
    return build_steps(spec.steps, users, medians)  # type: ignore[arg-type]


def funnel(
    lf: pl.LazyFrame,
    steps: Sequence[str],
    window: timedelta,
    *,
    mode: Mode = "window",
    breakdown: str | None = None,
    exclude: Sequence[Exclusion | str] = (),
    hold: str | None = None,
    step_windows: Mapping[int, timedelta] | None = None,
) -> FunnelResult:
    """The funnel ``steps`` over the events in ``lf`` (needs ``user_id``, ``event_type``,
    ``client_ts``; strict mode also ``event_id``).

    ``mode="window"`` (default) counts, per step, the users whose furthest step reached in
    order within ``window`` of the first step is at least that step: exactly ClickHouse's
    ``windowFunnel(window)``. ``mode="strict"`` also requires that no other event of the
    user comes between two consecutive steps (see :mod:`lakehouse.funnels.levels`).

    ``breakdown`` (a column such as ``platform``, or ``properties.<key>``) adds one funnel
    per value, each computed over the events carrying that value: a user whose events carry
    two values counts in both groups where they reached the first step.

    ``exclude`` (``"cancel"`` or ``"cancel@2"``, or :class:`Exclusion`): a chain drops off
    at step k when an excluded event comes between its step k and step k+1. ``hold`` (a
    column or ``properties.<key>``): every step of a chain has the same value of it.
    ``step_windows`` (``{3: timedelta(minutes=10)}``): step 3 must come within 10 minutes
    of the first step (instead of ``window``). See docs/analysis.md.
    """
    spec = funnel_spec(
        steps,
        window,
        mode,
        breakdown,
        exclusions=exclude,
        hold=hold,
        step_windows=step_windows or {},
    )
    began = time.perf_counter()
    groupings = [False] if spec.breakdown is None else [False, True]
    levels = collect_levels(lf, spec, groupings=groupings, ids=False)  # counts only
    overall = _summary(levels[0], spec, []).to_dicts()[0]
    groups: tuple[FunnelGroup, ...] = ()
    if spec.breakdown is not None:
        rows = (
            _summary(levels[1], spec, [GROUP])
            .sort(["users_1", GROUP], descending=[True, False], nulls_last=True)
            .to_dicts()
        )
        groups = tuple(FunnelGroup(r[GROUP], _steps(r, spec)) for r in rows)
    log.info(
        "funnel of %d steps (%s, window %s) in %.2f s",
        len(spec.steps),
        spec.mode,
        spec.window,
        time.perf_counter() - began,
    )
    return FunnelResult(
        steps=_steps(overall, spec),
        window=spec.window,
        mode=spec.mode,
        breakdown_by=spec.breakdown,
        breakdown=groups,
        options=options_of(spec),
    )
