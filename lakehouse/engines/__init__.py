"""Engines by name: who reads the tables and carries out maintenance.

An :class:`Engine` names what it can do, each capability as a ``"module:function"``
path so that an engine's module (and its heavy imports: trino, boto3) loads only when
that capability is used:

* ``funnel`` — ``(settings, FunnelRequest) -> FunnelResult``;
* ``ordered_view`` — ``(settings) -> view result``, the ordered view of the events table;
* ``maintenance`` — ``(settings, MaintenanceOptions, *, reporter, should_stop) -> RunResult``.

``python``/``polars`` run in this process; ``trino`` (:mod:`lakehouse.engines.trino`,
a server started with ``lakehouse trino start``) and ``athena``
(:mod:`lakehouse.engines.athena`) run SQL. A new engine (DuckDB, say) is a sub-package
beside them and one entry in :data:`ENGINES` (plus, if it runs funnels, the same path in
:data:`lakehouse.funnels.engines.ENGINES`, which the funnel library keeps so as not to
import this package; a test keeps the two equal). An unknown name is an error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from importlib import import_module
from typing import Any, Literal

from lakehouse.errors import UsageError

Capability = Literal["funnel", "ordered_view", "maintenance"]


@dataclass(frozen=True)
class Engine:
    """An engine's name and the ``"module:function"`` path of each thing it can do."""

    name: str
    funnel: str | None = None
    ordered_view: str | None = None
    maintenance: str | None = None

    def can(self, capability: Capability) -> bool:
        return getattr(self, capability) is not None

    def load(self, capability: Capability) -> Callable[..., Any]:
        """The function for ``capability`` (its module imported now)."""
        if capability not in CAPABILITIES:
            raise UsageError(f"unknown engine capability {capability!r}")
        target: str | None = getattr(self, capability)
        if target is None:
            able = ", ".join(names(capability)) or "none"
            raise UsageError(f"engine {self.name!r} has no {capability}; engines that do: {able}")
        module, _, attr = target.partition(":")
        fn: Callable[..., Any] = getattr(import_module(module), attr)
        return fn


CAPABILITIES: tuple[str, ...] = tuple(f.name for f in fields(Engine) if f.name != "name")

ENGINES: dict[str, Engine] = {
    "python": Engine("python", maintenance="lakehouse.engines.python:maintain_in_process"),
    "polars": Engine("polars", funnel="lakehouse.funnels.engines:run_polars"),
    "trino": Engine(
        "trino",
        funnel="lakehouse.engines.trino.funnel:run_trino",
        ordered_view="lakehouse.engines.trino.views:create_ordered_view",
        maintenance="lakehouse.engines.trino.maintenance:maintain_with_trino",
    ),
    "athena": Engine(
        "athena",
        funnel="lakehouse.engines.athena.funnel:run_athena",
        ordered_view="lakehouse.engines.athena.views:create_ordered_view",
        maintenance="lakehouse.engines.athena.maintenance:run_maintenance_with_athena",
    ),
    "duckdb": Engine("duckdb", funnel="lakehouse.engines.duckdb.funnel:run_duckdb"),
}


def get_engine(name: str) -> Engine:
    """The engine called ``name``; an unknown name is a :class:`UsageError`."""
    found = ENGINES.get(name)
    if found is None:
        raise UsageError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}")
    return found


def names(capability: Capability) -> tuple[str, ...]:
    """The engines that have ``capability``, in registry order."""
    return tuple(name for name, engine in ENGINES.items() if engine.can(capability))


__all__ = ["CAPABILITIES", "ENGINES", "Capability", "Engine", "get_engine", "names"]
