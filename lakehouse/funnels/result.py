"""Typed funnel results (frozen, ``to_dict()``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lakehouse.funnels.spec import FunnelSpec


@dataclass(frozen=True)
class FunnelStep:
    """One step: how many users reached it, and how.

    ``conversion_from_previous`` = users / users of the previous step (1.0 for the first
    step); ``conversion_from_first`` = users / users of the first step; both None when the
    denominator is 0. ``median_seconds_to_step``: median over the users who reached the
    step of the seconds from the chain's first step to this step, at the first time the
    user reached it (0.0 for the first step; None when nobody reached it).
    """

    step: str
    users: int
    conversion_from_previous: float | None
    conversion_from_first: float | None
    median_seconds_to_step: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "users": self.users,
            "conversion_from_previous": self.conversion_from_previous,
            "conversion_from_first": self.conversion_from_first,
            "median_seconds_to_step": self.median_seconds_to_step,
        }


def build_steps(
    names: Sequence[str], users: Sequence[int], medians: Sequence[float | None]
) -> tuple[FunnelStep, ...]:
    out = []
    for k, (name, n, median) in enumerate(zip(names, users, medians, strict=True)):
        prev = users[k - 1] if k else n
        first = users[0]
        out.append(
            FunnelStep(
                step=name,
                users=int(n),
                conversion_from_previous=(n / prev) if prev else None,
                conversion_from_first=(n / first) if first else None,
                median_seconds_to_step=median if n else None,
            )
        )
    return tuple(out)


def options_of(spec: FunnelSpec) -> tuple[tuple[str, Any], ...]:
    """``exclude`` (``["cancel@2", ...]``), ``hold`` and ``step_windows_seconds``
    (``{"3": 600.0}``), only those the spec sets: the extra keys of ``to_dict()``."""
    out: list[tuple[str, Any]] = []
    if spec.exclusions:
        out.append(("exclude", [str(x) for x in spec.exclusions]))
    if spec.hold is not None:
        out.append(("hold", spec.hold))
    if spec.step_windows:
        out.append(
            ("step_windows_seconds", {str(k): w.total_seconds() for k, w in spec.step_windows})
        )
    return tuple(out)


@dataclass(frozen=True)
class FunnelGroup:
    """The funnel of one breakdown value (None: events without a value)."""

    value: str | None
    steps: tuple[FunnelStep, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "steps": [s.to_dict() for s in self.steps]}


@dataclass(frozen=True)
class FunnelResult:
    """Users reaching each step, overall and (with a breakdown) per breakdown value.

    ``to_dict()`` gives ``{"steps": [{"step", "users", "conversion_from_previous",
    "conversion_from_first", "median_seconds_to_step"}, ...], "mode", "window_seconds",
    "breakdown_by", "breakdown": [{"value", "steps": [...]}, ...]}``.
    """

    steps: tuple[FunnelStep, ...]
    window: timedelta
    mode: str
    breakdown_by: str | None = None
    breakdown: tuple[FunnelGroup, ...] = ()
    engine: str = "polars"
    snapshot_id: int | None = None
    # the funnel's options beyond steps/window/mode/breakdown (exclusions, hold, step
    # windows), as ``options_of`` spells them; empty when none was asked for
    options: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def of(
        cls,
        spec: FunnelSpec,
        steps: tuple[FunnelStep, ...],
        groups: tuple[FunnelGroup, ...] = (),
        *,
        engine: str = "polars",
        snapshot_id: int | None = None,
    ) -> FunnelResult:
        """The result of ``spec``: its window, mode, breakdown column and options."""
        return cls(
            steps=steps,
            window=spec.window,
            mode=spec.mode,
            breakdown_by=spec.breakdown,
            breakdown=groups,
            engine=engine,
            snapshot_id=snapshot_id,
            options=options_of(spec),
        )

    @property
    def users(self) -> dict[str, int]:
        """Users per step name (the last wins when a name repeats)."""
        return {s.step: s.users for s in self.steps}

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "steps": [s.to_dict() for s in self.steps],
            "mode": self.mode,
            "window_seconds": self.window.total_seconds(),
            "engine": self.engine,
            "snapshot_id": self.snapshot_id,
        }
        out.update(self.options)
        if self.breakdown_by is not None:
            out["breakdown_by"] = self.breakdown_by
            out["breakdown"] = [g.to_dict() for g in self.breakdown]
        return out
