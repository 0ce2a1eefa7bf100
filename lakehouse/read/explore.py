"""Small helpers for exploring any events table (the notebooks use them): defaults taken
from the data when a parameter is not given, and labels for values that are missing."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from lakehouse.errors import UsageError
from lakehouse.read.source import check_range

if TYPE_CHECKING:
    import polars as pl

MISSING_LABEL = "(none)"  # how a null group value is shown


def frequent_event_types(lf: pl.LazyFrame, n: int = 4) -> list[str]:
    """The ``n`` most frequent event types, most frequent first (ties by name): the
    default funnel steps when none are given (funnels narrow, so the most frequent types
    are the likely early steps). Fewer when the frame has fewer types; none when empty."""
    import polars as pl

    if n < 1:
        raise UsageError("n must be at least 1")
    counts = (
        lf.select(pl.col("event_type").cast(pl.String))
        .drop_nulls()
        .group_by("event_type")
        .agg(pl.len().alias("n"))
        .sort(["n", "event_type"], descending=[True, False])
        .head(n)
        .collect()
    )
    return counts["event_type"].to_list()


def parse_steps(text: str | None) -> list[str] | None:
    """``"a, b,c"`` -> ``["a", "b", "c"]``; None or blank -> None (take the defaults)."""
    if text is None or not text.strip():
        return None
    steps = [s.strip() for s in text.split(",")]
    if any(not s for s in steps):
        raise UsageError(f"funnel steps must be event types separated by commas, got {text!r}")
    return steps


def parse_range(
    start: str | datetime | None, end: str | datetime | None
) -> tuple[datetime | None, datetime | None]:
    """A ``[start, end)`` range of client time from ISO texts or datetimes (blank: open)."""

    def one(value: str | datetime | None, name: str) -> datetime | None:
        if value is None or isinstance(value, datetime):
            return value
        if not value.strip():
            return None
        try:
            return datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError as exc:
            raise UsageError(
                f"{name}: cannot read {value!r}; write it like 2024-05-01T10:00Z"
            ) from exc

    return check_range(one(start, "start"), one(end, "end"))


def label_missing(column: str) -> pl.Expr:
    """``column`` as text with nulls shown as :data:`MISSING_LABEL` (for axes and legends)."""
    import polars as pl

    return pl.col(column).cast(pl.String).fill_null(MISSING_LABEL)
