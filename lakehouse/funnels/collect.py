"""Collecting the per-user levels of a funnel: the events ordered by one packed sort
(:mod:`lakehouse.funnels.packed`) when the keys fit, by row sorts otherwise, and again
with exact keys in the rare case two users share a 64-bit hash. The level computations
themselves are in :mod:`lakehouse.funnels.levels`."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING

from lakehouse.funnels.levels import (
    _HASH_SEED,
    GROUP,
    KEY,
    USER,
    _base,
    _keys,
    _reach,
    _strict_levels,
    _window_entries,
    _window_levels,
    levels_for,
)
from lakehouse.funnels.packed import SEQ, packed_order
from lakehouse.funnels.spec import Exclusion, FunnelSpec, Mode, funnel_spec

if TYPE_CHECKING:
    import polars as pl

log = logging.getLogger(__name__)


def _packed_levels(
    lf: pl.LazyFrame, spec: FunnelSpec, groupings: list[bool], ids: bool
) -> list[pl.DataFrame] | None:
    """The levels with the entries (window mode) or events (strict mode) ordered by
    :func:`packed_order`, collected once for every grouping; None when the packed keys
    would be too wide. In strict mode an event's code is its type's number among the
    step names (0: no step), and events at one time follow ``event_id``."""
    import polars as pl

    wide = any(groupings)
    base = _base(lf, spec, wide, exact=False, ids=ids)
    names = list(dict.fromkeys(spec.steps))
    if spec.mode == "window":
        low = len(spec.excluded_types)
        entries = _window_entries(base, spec, wide).with_columns(_code=pl.col("_idx") + low)
    else:
        low = 0
        entries = base.with_columns(
            _code=pl.col("event_type").replace_strict(
                names, range(1, len(names) + 1), default=0, return_dtype=pl.Int32
            )
        ).drop("event_type")
    collected = entries.collect()
    plans = []
    for grouped in groupings:
        keys = _keys(grouped, spec)
        part = collected if grouped or not wide else collected.drop(GROUP)
        if keys != [KEY]:  # one hash for the sequence's whole key
            part = part.with_columns(pl.struct(keys).hash(_HASH_SEED).alias("_seq_hash"))
        ordered = packed_order(
            part,
            hash_of=KEY if keys == [KEY] else "_seq_hash",
            ts="_ts",
            code="_code",
            carry=[*keys, USER] if keys != [KEY] else [USER],
            tie="event_id" if spec.mode == "strict" else None,
        )
        if ordered is None:
            return None
        rows = ordered.rows.lazy().select(
            SEQ,
            "_ts",
            (pl.col("_code") - low).alias("_idx"),
            "_start",
            pl.lit(ordered.clash).alias("_clash"),
        )
        if spec.mode == "window":
            frame = _window_levels(rows, spec)
        else:
            frame = _strict_levels(rows, spec, lambda s: pl.col("_idx") == names.index(s) + 1)
        plans.append(_reach(frame, spec, grouped, ordered.sequences))
    return pl.collect_all(plans)


def collect_levels(
    lf: pl.LazyFrame, spec: FunnelSpec, *, groupings: list[bool], ids: bool = True
) -> list[pl.DataFrame]:
    """Collect :func:`levels_for` for each grouping (in one Polars run), redone with exact
    string keys in the rare case two users share a 64-bit hash."""
    import polars as pl

    frames = _packed_levels(lf, spec, groupings, ids)
    if frames is None:
        frames = pl.collect_all([levels_for(lf, spec, grouped=g, ids=ids) for g in groupings])
    if any(f["_clash"].any() for f in frames):
        log.warning("two users share a hash key; computing the funnel again with exact keys")
        frames = pl.collect_all(
            [levels_for(lf, spec, grouped=g, exact=True, ids=ids) for g in groupings]
        )
    return [f.drop("_clash") for f in frames]


def user_levels(
    lf: pl.LazyFrame,
    steps: Sequence[str],
    window: timedelta,
    *,
    mode: Mode = "window",
    breakdown: str | None = None,
    exclude: Sequence[Exclusion | str] = (),
    hold: str | None = None,
    step_windows: Mapping[int, timedelta] | None = None,
) -> pl.DataFrame:
    """One row per user who reached the first step (per breakdown value, in column
    ``breakdown``, when asked): ``level`` — the furthest step reached, the value
    ClickHouse's ``windowFunnel`` returns in window mode — and ``us_to_step_1..K``.
    ``exclude``, ``hold``, ``step_windows``: as :func:`lakehouse.funnels.funnel`."""
    spec = funnel_spec(
        steps,
        window,
        mode,
        breakdown,
        exclusions=exclude,
        hold=hold,
        step_windows=step_windows or {},
    )
    return collect_levels(lf, spec, groupings=[breakdown is not None])[0]
