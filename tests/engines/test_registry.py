"""Engines by name: each capability resolves to a function of the engine's own package,
an unknown engine or a missing capability is an error, and the CLI's choices come from
the registry."""

from __future__ import annotations

import inspect

import pytest
from click.testing import CliRunner

from lakehouse.engines import CAPABILITIES, ENGINES, Engine, get_engine, names
from lakehouse.errors import UsageError
from lakehouse.funnels.engines import ENGINES as FUNNEL_ENGINES


def test_every_capability_of_every_engine_loads_a_function() -> None:
    loaded = 0
    for engine in ENGINES.values():
        for capability in CAPABILITIES:
            if engine.can(capability):  # type: ignore[arg-type]
                fn = engine.load(capability)  # type: ignore[arg-type]
                assert callable(fn) and "settings" in inspect.signature(fn).parameters
                loaded += 1
    assert loaded == 9


def test_capabilities_by_engine() -> None:
    assert CAPABILITIES == ("funnel", "ordered_view", "maintenance")
    assert names("maintenance") == ("python", "trino", "athena")
    assert names("funnel") == ("polars", "trino", "athena", "duckdb")
    assert names("ordered_view") == ("trino", "athena")
    assert (
        get_engine("trino").load("maintenance").__module__ == "lakehouse.engines.trino.maintenance"
    )


def test_an_unknown_engine_or_capability_is_an_error() -> None:
    with pytest.raises(UsageError, match="unknown engine 'spark'; choose one of python, polars"):
        get_engine("spark")
    with pytest.raises(UsageError, match="engine 'python' has no funnel; engines that do: polars"):
        get_engine("python").load("funnel")
    with pytest.raises(UsageError, match="unknown engine capability 'vacuum'"):
        Engine("x", maintenance="a:b").load("vacuum")  # type: ignore[arg-type]


def test_the_funnel_engines_are_the_registry_s() -> None:
    assert {n: ENGINES[n].funnel for n in names("funnel")} == FUNNEL_ENGINES


def test_maintain_run_offers_the_registry_s_maintenance_engines() -> None:
    from lakehouse.cli.main import cli

    result = CliRunner().invoke(cli, ["maintain", "run", "--engine", "duckdb"])
    assert result.exit_code == 2  # duckdb runs funnels, not maintenance
    assert "'duckdb' is not one of 'python', 'trino', 'athena'" in result.output
