"""How late events arrive: per client-time hour, or grouped by any column.

An event is **late** when its hour partition had closed when it was received:
``hour_end(client_ts) + allowed_lateness <= server_ts`` (the writer's rule, defined in
:mod:`lakehouse.hours`, with ``LAKEHOUSE_ALLOWED_LATENESS``). The delay is ``server_ts - client_ts`` in seconds.
Quantiles are linear interpolations between the closest ranks.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from lakehouse.errors import UsageError
from lakehouse.hours import hour_expr, late_expr
from lakehouse.read.source import events
from lakehouse.settings import Settings

if TYPE_CHECKING:
    import polars as pl

QUANTILES = (("delay_p50_s", 0.5), ("delay_p90_s", 0.9), ("delay_p99_s", 0.99))


def _flags(lf: pl.LazyFrame, allowed_lateness: timedelta) -> pl.LazyFrame:
    import polars as pl

    if allowed_lateness < timedelta(0):
        raise UsageError("allowed_lateness must not be negative")
    return lf.with_columns(
        hour=hour_expr(pl.col("client_ts")),
        _late=late_expr(pl.col("client_ts"), pl.col("server_ts"), allowed_lateness),
        _delay=(pl.col("server_ts") - pl.col("client_ts")).dt.total_microseconds() / 1e6,
    )


def _aggregates() -> list[pl.Expr]:
    import polars as pl

    return [
        pl.len().cast(pl.Int64).alias("events"),
        pl.col("_late").sum().cast(pl.Int64).alias("late_events"),
        pl.col("_late").mean().alias("late_share"),
        *(pl.col("_delay").quantile(q, "linear").alias(name) for name, q in QUANTILES),
    ]


def lateness_frame(lf: pl.LazyFrame, *, allowed_lateness: timedelta) -> pl.LazyFrame:
    """Per client-time hour (``hour``, UTC): ``events``, ``late_events``, ``late_share``,
    ``delay_p50_s``, ``delay_p90_s``, ``delay_p99_s``; sorted by hour."""
    return _flags(lf, allowed_lateness).group_by("hour").agg(_aggregates()).sort("hour")


def late_share_frame(lf: pl.LazyFrame, column: str, *, allowed_lateness: timedelta) -> pl.LazyFrame:
    """The same measures grouped by ``column`` (e.g. ``platform``), most events first."""
    names = lf.collect_schema().names()
    if column not in names:
        raise UsageError(f"no column {column!r}; the columns are {', '.join(names)}")
    return (
        _flags(lf, allowed_lateness)
        .group_by(column)
        .agg(_aggregates())
        .sort(["events", column], descending=[True, False], nulls_last=True)
    )


def lateness(
    settings: Settings | None = None,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    snapshot_id: int | None = None,
) -> pl.DataFrame:
    """Late events and delivery delay per client-time hour of the events table."""
    settings = settings or Settings.from_env()
    lf = events(settings, start=start, end=end, snapshot_id=snapshot_id)
    return lateness_frame(lf, allowed_lateness=settings.allowed_lateness).collect()


def late_share(
    column: str,
    settings: Settings | None = None,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    snapshot_id: int | None = None,
) -> pl.DataFrame:
    """Late events and delivery delay grouped by ``column`` (e.g. ``platform``)."""
    settings = settings or Settings.from_env()
    lf = events(settings, start=start, end=end, snapshot_id=snapshot_id)
    return late_share_frame(lf, column, allowed_lateness=settings.allowed_lateness).collect()
