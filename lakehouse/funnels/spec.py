"""What a funnel asks for, validated once for every engine."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Literal

from lakehouse.durations import format_duration
from lakehouse.errors import UsageError

if TYPE_CHECKING:
    import polars as pl

Mode = Literal["window", "strict"]
MODES: tuple[Mode, ...] = ("window", "strict")

# A breakdown on a key inside the ``properties`` JSON text: ``properties.<key>``.
PROPERTY_PREFIX = "properties."
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")  # fullmatch: "$" would allow a final "\n"


@dataclass(frozen=True)
class FunnelSpec:
    steps: tuple[str, ...]
    window: timedelta
    mode: Mode = "window"
    breakdown: str | None = None

    @property
    def window_us(self) -> int:
        """The window in whole microseconds (the table's timestamp precision)."""
        return self.window // timedelta(microseconds=1)


def funnel_spec(
    steps: Sequence[str], window: timedelta, mode: str = "window", breakdown: str | None = None
) -> FunnelSpec:
    """Validate the funnel's arguments (:class:`UsageError` on anything wrong)."""
    if isinstance(steps, str):
        raise UsageError(
            f"steps must be a sequence of event types, not the string {steps!r} "
            "(write ['a', 'b'], or --steps a,b on the command line)"
        )
    clean = tuple(steps)
    if not clean:
        raise UsageError("a funnel needs at least one step")
    for step in clean:
        if not isinstance(step, str) or not step.strip():
            raise UsageError(f"every step must be a non-empty event type, got {step!r}")
    if not isinstance(window, timedelta):
        raise UsageError(f"window must be a timedelta, not {type(window).__name__}")
    if window <= timedelta(0):
        raise UsageError(f"the window must be positive, got {format_duration(window)}")
    if window < timedelta(microseconds=1):
        raise UsageError("the window must be at least one microsecond")
    if mode not in MODES:
        raise UsageError(f"unknown funnel mode {mode!r}; choose one of {', '.join(MODES)}")
    if breakdown is not None:
        if not breakdown.strip():
            raise UsageError("the breakdown must name a column or properties.<key>")
        if breakdown.startswith(PROPERTY_PREFIX):
            key = breakdown[len(PROPERTY_PREFIX) :]
            if not _KEY.fullmatch(key):
                raise UsageError(f"cannot break down by the property key {key!r}")
    return FunnelSpec(clean, window, mode, breakdown)


def breakdown_expr(breakdown: str, columns: Sequence[str]) -> pl.Expr:
    """The breakdown value of each event: a column, or ``properties.<key>`` read from the
    JSON text (as a string; null when the key is absent)."""
    import polars as pl

    if breakdown in columns:
        return pl.col(breakdown).cast(pl.String)
    if breakdown.startswith(PROPERTY_PREFIX) and "properties" in columns:
        key = breakdown[len(PROPERTY_PREFIX) :]
        return pl.col("properties").str.json_path_match(f"$.{key}")
    raise UsageError(
        f"cannot break down by {breakdown!r}: not a column (columns: {', '.join(columns)}) "
        "nor properties.<key>"
    )
