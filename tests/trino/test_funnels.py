"""Funnels on a real Trino: the ``trino`` engine, the read-API engineer's ``funnel_sql`` run
on Trino, the Polars engine and ClickHouse's own ``windowFunnel`` (chdb, the independent
oracle) count the same users per step on the generated table."""

from __future__ import annotations

import json
import math
from datetime import timedelta
from typing import Any

import pytest
from click.testing import CliRunner

from lakehouse.engines.trino.funnel import funnel_query, run_trino
from lakehouse.engines.trino.sql import table_ref
from lakehouse.errors import UsageError
from lakehouse.funnels import FunnelRequest, FunnelResult, funnel_spec, funnel_sql, run_funnel
from lakehouse.read import events
from lakehouse.trino_server import query
from tests.trino.conftest import Written
from tests.trino.generate import chdb_users

pytestmark = pytest.mark.trino

CHECKOUT = ["app_open", "view_product", "add_to_cart", "checkout"]


@pytest.mark.parametrize(
    ("steps", "window"),
    [
        (CHECKOUT, timedelta(hours=1)),
        (CHECKOUT, timedelta(days=1)),
        (["view_product", "view_product", "add_to_cart"], timedelta(minutes=10)),
        (["search", "add_to_cart", "purchase"], timedelta(seconds=90)),
    ],
)
def test_users_per_step_agree_with_clickhouse(
    generated: Written, steps: list[str], window: timedelta
) -> None:
    settings, port = generated.settings, generated.port
    request = FunnelRequest(tuple(steps), window)
    trino = [s.users for s in run_trino(settings, request, port=port).steps]
    polars = [s.users for s in run_funnel(settings, request, engine="polars").steps]
    oracle = chdb_users(events(settings).collect(), steps, window)
    sql, params = funnel_sql(steps, window, table_ref(settings))
    [row] = query(sql, params, settings=settings, port=port).rows
    assert trino == polars == oracle == list(row)
    assert trino[0] > trino[-1] and trino[1] > 0  # a funnel with drop-off, not an empty one


def _same(a: FunnelResult, b: FunnelResult) -> None:
    """Equal results; medians (floats from different arithmetic) to 1e-9 relative."""

    def plain(result: FunnelResult) -> tuple[dict[str, Any], list[float | None]]:
        data = result.to_dict()
        data.pop("engine")
        medians: list[float | None] = []
        for steps in [data["steps"], *(g["steps"] for g in data.get("breakdown", []))]:
            for step in steps:
                medians.append(step.pop("median_seconds_to_step"))
        return data, medians

    (da, ma), (db, mb) = plain(a), plain(b)
    assert da == db
    assert len(ma) == len(mb)
    for x, y in zip(ma, mb, strict=True):
        assert (x is None and y is None) or math.isclose(x, y, rel_tol=1e-9)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "options",
    [
        {"mode": "strict"},
        {"breakdown": "platform"},
        {"breakdown": "properties.page", "window": timedelta(minutes=30)},
        {"mode": "strict", "breakdown": "platform", "window": timedelta(minutes=20)},
        {"snapshot": "first"},
        {"range": True},
    ],
)
def test_whole_results_equal_the_polars_engine(generated: Written, options: dict[str, Any]) -> None:
    kw: dict[str, Any] = {"window": timedelta(hours=2)}
    kw.update({k: v for k, v in options.items() if k in ("mode", "breakdown", "window")})
    if options.get("snapshot") == "first":
        kw["snapshot_id"] = generated.written_snapshot
    if options.get("range"):
        first = events(generated.settings).select("client_ts").min().collect().item()
        kw["start"], kw["end"] = first + timedelta(hours=2), first + timedelta(hours=5)
    request = FunnelRequest(tuple(CHECKOUT), **kw)
    trino = run_trino(generated.settings, request, port=generated.port)
    polars = run_funnel(generated.settings, request, engine="polars")
    _same(trino, polars)
    assert trino.engine == "trino" and trino.snapshot_id == polars.snapshot_id is not None
    assert trino.steps[1].users > 0 and trino.steps[1].median_seconds_to_step
    if "breakdown" in kw:
        assert len(trino.breakdown) >= 3


def test_step_names_only_reach_trino_as_parameters(generated: Written) -> None:
    hostile = "x'); DROP TABLE gen; --"
    steps = ("app_open", hostile, 'view"product')
    sql, params = funnel_query(
        funnel_spec(steps, timedelta(hours=1)), table_ref(generated.settings), ("event_type",)
    )
    assert hostile not in sql and 'view"product' not in sql
    assert params[:3] == list(steps)
    result = run_trino(
        generated.settings, FunnelRequest(steps, timedelta(hours=1)), port=generated.port
    )
    assert [s.users for s in result.steps][1:] == [0, 0]
    [(n,)] = query(
        "SELECT count(*) FROM gen", settings=generated.settings, port=generated.port
    ).rows
    assert n == generated.unique_events


def test_a_breakdown_on_an_unknown_column_is_a_usage_error(generated: Written) -> None:
    with pytest.raises(UsageError, match="cannot break down"):
        run_trino(
            generated.settings,
            FunnelRequest(("a", "b"), timedelta(hours=1), breakdown="no_such_column"),
            port=generated.port,
        )


def test_the_funnel_command_runs_on_trino(
    generated: Written, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lakehouse.cli.funnel_cmd import funnel as funnel_cmd

    engine = next(p for p in funnel_cmd.params if p.name == "engine")
    if "trino" not in getattr(engine.type, "choices", ()):
        pytest.skip(
            "the trino engine is not in lakehouse.funnels.engines.ENGINES yet: add "
            '"trino": "lakehouse.engines.trino.funnel:run_trino"'
        )
    monkeypatch.setenv("LAKEHOUSE_TRINO_PORT", str(generated.port))
    args = ["--home", str(generated.settings.home), "--table", str(generated.settings.table)]
    out = CliRunner().invoke(
        funnel_cmd,
        ["--steps", ",".join(CHECKOUT), "--window", "1d", "--engine", "trino", "--json", *args],
    )
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    polars = run_funnel(generated.settings, FunnelRequest(tuple(CHECKOUT), timedelta(days=1)))
    assert data["engine"] == "trino"
    assert [s["users"] for s in data["steps"]] == [s.users for s in polars.steps]


def test_an_empty_table_has_an_empty_funnel(generated: Written) -> None:
    from catalog import open_catalog
    from lakehouse.tables import ensure_tables

    settings = generated.settings.with_table(generated.settings.table.sibling("_empty"))
    ensure_tables(open_catalog(settings), settings.table)
    request = FunnelRequest(tuple(CHECKOUT), timedelta(hours=1))
    trino = run_trino(settings, request, port=generated.port)
    assert [s.users for s in trino.steps] == [0, 0, 0, 0] and trino.snapshot_id is None
    _same(trino, run_funnel(settings, request, engine="polars"))


@pytest.mark.parametrize(
    "options",
    [
        {"exclude": ("search",)},
        {"exclude": ("search@2", "view_page@3")},
        {"hold": "platform"},
        {"hold": "properties.page", "exclude": ("search",)},
        {"step_windows": ((3, timedelta(minutes=20)), (4, timedelta(minutes=40)))},
        {"mode": "strict", "hold": "platform", "breakdown": "platform"},
        {"breakdown": "properties.page", "exclude": ("view_page",), "snapshot": "first"},
    ],
)
def test_exclusion_hold_and_step_windows_equal_polars_and_duckdb(
    generated: Written, options: dict[str, Any]
) -> None:
    """The shared funnel query on Trino (the ``trino`` engine) and on DuckDB (the
    ``duckdb`` engine) against the Polars engine, with every funnel option."""
    kw: dict[str, Any] = {"window": timedelta(hours=2)}
    kw.update({k: v for k, v in options.items() if k != "snapshot"})
    if options.get("snapshot") == "first":
        kw["snapshot_id"] = generated.written_snapshot
    request = FunnelRequest(tuple(CHECKOUT), **kw)
    trino = run_trino(generated.settings, request, port=generated.port)
    polars = run_funnel(generated.settings, request, engine="polars")
    duck = run_funnel(generated.settings, request, engine="duckdb")
    _same(trino, polars)
    _same(duck, polars)
    assert trino.steps[0].users > trino.steps[-1].users
