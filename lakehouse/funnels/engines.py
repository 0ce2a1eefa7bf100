"""Funnel engines by name, for the CLI and for callers that only hold settings.

An engine is a function ``(settings, request) -> FunnelResult``. :data:`ENGINES` maps a
name to ``"module:function"`` so that an engine's module (and its heavy imports) loads
only when the engine is used. ``polars`` scans the events table with the read API;
``trino`` and ``athena`` live with their engines' code. Another engine is one line here,
or :func:`register_engine` at run time (before the CLI is built, for it to appear in
``--engine``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from importlib import import_module

from lakehouse.errors import UsageError
from lakehouse.funnels.result import FunnelResult
from lakehouse.funnels.spec import Exclusion, FunnelSpec, Mode, funnel_spec
from lakehouse.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FunnelRequest:
    """A funnel over the events table: steps, window, mode, breakdown, and which events
    (``start <= client_ts < end`` of snapshot ``snapshot_id``, default the current one)."""

    steps: tuple[str, ...]
    window: timedelta
    mode: Mode = "window"
    breakdown: str | None = None
    snapshot_id: int | None = None
    start: datetime | None = None
    end: datetime | None = None
    exclude: tuple[Exclusion, ...] = ()
    hold: str | None = None
    step_windows: tuple[tuple[int, timedelta], ...] = ()

    def __post_init__(self) -> None:
        self.spec  # noqa: B018 - validates

    @property
    def spec(self) -> FunnelSpec:
        """The validated funnel (:class:`UsageError` on anything wrong)."""
        return funnel_spec(
            self.steps,
            self.window,
            self.mode,
            self.breakdown,
            exclusions=self.exclude,
            hold=self.hold,
            step_windows=self.step_windows,
        )


Engine = Callable[[Settings, FunnelRequest], FunnelResult]

ENGINES: dict[str, str | Engine] = {
    "polars": "lakehouse.funnels.engines:run_polars",
    "trino": "lakehouse.engines.trino.funnel:run_trino",  # a running local Trino (lakehouse trino start)
    "athena": "lakehouse.engines.athena.funnel:run_athena",  # window mode without breakdown
    "duckdb": "lakehouse.engines.duckdb.funnel:run_duckdb",  # in process, over the snapshot's files
}


def register_engine(name: str, engine: str | Engine) -> None:
    """Add (or replace) an engine: a function or its ``"module:function"`` path."""
    ENGINES[name] = engine


def resolve_engine(name: str) -> Engine:
    target = ENGINES.get(name)
    if target is None:
        raise UsageError(f"unknown funnel engine {name!r}; choose one of {', '.join(ENGINES)}")
    if isinstance(target, str):
        module, _, attr = target.partition(":")
        fn: Engine = getattr(import_module(module), attr)
        return fn
    return target


def run_funnel(
    settings: Settings, request: FunnelRequest, *, engine: str = "polars"
) -> FunnelResult:
    """Run ``request`` on the events table with the named engine."""
    result = resolve_engine(engine)(settings, request)
    log.info("engine %s: %s", engine, [s.users for s in result.steps])
    return result


def run_polars(settings: Settings, request: FunnelRequest) -> FunnelResult:
    """The Polars engine: scan the table (range and snapshot pushed down), then funnel."""
    from lakehouse.funnels.compute import funnel
    from lakehouse.read.source import pinned_events

    lf, snapshot_id = pinned_events(
        settings, start=request.start, end=request.end, snapshot_id=request.snapshot_id
    )
    result = funnel(
        lf,
        request.steps,
        request.window,
        mode=request.mode,
        breakdown=request.breakdown,
        exclude=request.exclude,
        hold=request.hold,
        step_windows=dict(request.step_windows),
    )
    return replace(result, engine="polars", snapshot_id=snapshot_id)
