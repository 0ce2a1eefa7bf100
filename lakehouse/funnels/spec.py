"""What a funnel asks for, validated once for every engine."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
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
class Exclusion:
    """An excluded event type: a chain drops off at step ``after`` (1-based) when an event
    of ``event_type`` comes between its step ``after`` and step ``after + 1``; ``after``
    None: between any two consecutive steps."""

    event_type: str
    after: int | None = None

    def __str__(self) -> str:
        return self.event_type if self.after is None else f"{self.event_type}@{self.after}"


@dataclass(frozen=True)
class FunnelSpec:
    steps: tuple[str, ...]
    window: timedelta
    mode: Mode = "window"
    breakdown: str | None = None
    exclusions: tuple[Exclusion, ...] = ()
    hold: str | None = None
    # (step number 2..K, window from the first step) replacing ``window`` for that step
    step_windows: tuple[tuple[int, timedelta], ...] = ()

    @property
    def window_us(self) -> int:
        """The window in whole microseconds (the table's timestamp precision)."""
        return self.window // timedelta(microseconds=1)

    def window_us_for(self, step: int) -> int:
        """The window (µs from the first step) within which step ``step`` (1-based) must
        come: its own step window if given, else the funnel's window."""
        own = dict(self.step_windows).get(step, self.window)
        return own // timedelta(microseconds=1)

    def excluded_after(self, step: int) -> tuple[str, ...]:
        """The event types that break a chain between step ``step`` and ``step + 1``."""
        return tuple(sorted({x.event_type for x in self.exclusions if x.after in (None, step)}))

    @property
    def excluded_types(self) -> tuple[str, ...]:
        return tuple(sorted({x.event_type for x in self.exclusions}))


def _check_column(name: str, what: str) -> None:
    if not name.strip():
        raise UsageError(f"the {what} must name a column or properties.<key>")
    if name.startswith(PROPERTY_PREFIX):
        key = name[len(PROPERTY_PREFIX) :]
        if not _KEY.fullmatch(key):
            raise UsageError(f"cannot use the property key {key!r} as the {what}")


def parse_exclusion(text: str) -> Exclusion:
    """``TYPE`` or ``TYPE@STEP`` (the command line's ``--exclude``)."""
    kind, at, step = text.rpartition("@") if "@" in text else (text, "", "")
    if not at:
        return Exclusion(text.strip())
    if not step.strip().isdigit():
        raise UsageError(f"--exclude wants TYPE or TYPE@STEP (a step number), got {text!r}")
    return Exclusion(kind.strip(), int(step))


def funnel_spec(
    steps: Sequence[str],
    window: timedelta,
    mode: str = "window",
    breakdown: str | None = None,
    *,
    exclusions: Sequence[Exclusion | str] = (),
    hold: str | None = None,
    step_windows: Mapping[int, timedelta] | Sequence[tuple[int, timedelta]] = (),
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
    if hold is not None:
        _check_column(hold, "held column (--hold)")
    excl = tuple(parse_exclusion(x) if isinstance(x, str) else x for x in exclusions)
    for x in excl:
        if not x.event_type or x.event_type in clean:
            raise UsageError(
                f"cannot exclude {x.event_type!r}: an excluded event type must be a "
                "non-empty type that is not one of the steps"
            )
        if x.after is not None and not 1 <= x.after < len(clean):
            raise UsageError(
                f"--exclude {x}: the step must be between 1 and {len(clean) - 1} "
                "(the exclusion is between that step and the next)"
            )
    pairs: list[tuple[int, timedelta]] = sorted(
        dict(step_windows).items() if isinstance(step_windows, Mapping) else step_windows
    )
    for number, own in pairs:
        if not isinstance(number, int) or not 2 <= number <= len(clean):
            raise UsageError(
                f"a step window needs a step number from 2 to {len(clean)}, got {number!r}"
            )
        if not isinstance(own, timedelta) or own < timedelta(microseconds=1):
            raise UsageError(f"the window of step {number} must be a positive duration")
    if len({s for s, _ in pairs}) != len(pairs):
        raise UsageError("a step has two step windows")
    return FunnelSpec(clean, window, mode, breakdown, excl, hold, tuple(pairs))


def breakdown_expr(breakdown: str, columns: Sequence[str], *, what: str = "break down") -> pl.Expr:
    """The breakdown (or held) value of each event: a column, or ``properties.<key>`` read
    from the JSON text (as a string; null when the key is absent)."""
    import polars as pl

    if breakdown in columns:
        return pl.col(breakdown).cast(pl.String)
    if breakdown.startswith(PROPERTY_PREFIX) and "properties" in columns:
        key = breakdown[len(PROPERTY_PREFIX) :]
        return pl.col("properties").str.json_path_match(f"$.{key}")
    raise UsageError(
        f"cannot {what} by {breakdown!r}: not a column (columns: {', '.join(columns)}) "
        "nor properties.<key>"
    )
