"""``lakehouse funnel`` and ``lakehouse snapshots`` through click's runner: exit codes,
JSON output, text output."""

from __future__ import annotations

import json
from datetime import timedelta

import click
import pytest
from click.testing import CliRunner

import lakehouse
from lakehouse.cli.funnel_cmd import funnel
from lakehouse.cli.group import LakehouseGroup
from lakehouse.cli.read_cmd import snapshots
from lakehouse.funnels import ENGINES, register_engine
from lakehouse.settings import Settings
from tests.analysis.conftest import ev, write

M = timedelta(minutes=1)


@pytest.fixture
def cli() -> click.Group:
    """The two commands in a group, as main.py registers them (the group handles errors)."""

    @click.group(cls=LakehouseGroup)
    def group() -> None:
        pass

    group.add_command(funnel)
    group.add_command(snapshots)
    return group


@pytest.fixture
def shop(sqlite_settings: Settings) -> Settings:
    rows = [
        ev("1", "u1", "open", 0 * M, platform="ios"),
        ev("2", "u1", "view", 1 * M, platform="ios"),
        ev("3", "u1", "buy", 2 * M, platform="ios"),
        ev("4", "u2", "open", 0 * M, platform="web"),
        ev("5", "u2", "view", 90 * M, platform="web"),
        ev("6", "u3", "open", 0 * M, platform="web"),
        ev("7", "u3", "x", 1 * M, platform="web"),
        ev("8", "u3", "view", 2 * M, platform="web"),
    ]
    write(sqlite_settings, rows)
    return sqlite_settings


def run(cli: click.Group, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_funnel_json(cli: click.Group, shop: Settings) -> None:
    code, out, _ = run(cli, "funnel", "--steps", "open,view,buy", "--window", "1h", "--json")
    assert code == 0
    data = json.loads(out)
    assert [(s["step"], s["users"]) for s in data["steps"]] == [
        ("open", 3),
        ("view", 2),
        ("buy", 1),
    ]
    assert data["steps"][1]["conversion_from_previous"] == pytest.approx(2 / 3)
    assert data["steps"][1]["median_seconds_to_step"] == 90.0  # u1 60 s, u3 120 s
    assert data["mode"] == "window" and data["window_seconds"] == 3600.0
    assert data["engine"] == "polars"
    assert data["snapshot_id"] == lakehouse.current_snapshot_id(shop)
    assert data["table"] == "analytics.events"


def test_funnel_strict_breakdown_and_text(cli: click.Group, shop: Settings) -> None:
    code, out, _ = run(
        cli,
        "funnel",
        "--steps",
        "open,view",
        "--window",
        "2h",
        "--mode",
        "strict",
        "--breakdown",
        "platform",
        "--json",
    )
    assert code == 0
    data = json.loads(out)
    assert [s["users"] for s in data["steps"]] == [3, 2]  # u3's x breaks open -> view
    groups = {g["value"]: [s["users"] for s in g["steps"]] for g in data["breakdown"]}
    assert groups == {"web": [2, 1], "ios": [1, 1]}
    code, out, _ = run(
        cli, "funnel", "--steps", "open,view", "--window", "2h", "--breakdown", "platform"
    )
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("funnel (window mode, window 2h, polars, snapshot ")
    assert lines[2].split() == ["open", "3", "100.0%", "100.0%", "0.0s"]
    assert lines[3].split() == ["view", "3", "100.0%", "100.0%", "2m"]  # 60 s, 120 s, 90 m
    assert "platform = web" in lines and "platform = ios" in lines


def test_funnel_pinned_snapshot_and_range(cli: click.Group, shop: Settings) -> None:
    pinned = lakehouse.current_snapshot_id(shop)
    write(shop, [ev("9", "u9", "open", 0 * M), ev("10", "u9", "view", 1 * M)])
    code, out, _ = run(
        cli, "funnel", "--steps", "open,view", "--window", "1h", "--snapshot", str(pinned), "--json"
    )
    assert code == 0 and [s["users"] for s in json.loads(out)["steps"]] == [3, 2]
    code, out, _ = run(cli, "funnel", "--steps", "open,view", "--window", "1h", "--json")
    assert code == 0 and [s["users"] for s in json.loads(out)["steps"]] == [4, 3]
    code, out, _ = run(
        cli,
        "funnel",
        "--steps",
        "open,view",
        "--start",
        "2024-05-01T00:00:30Z",
        "--end",
        "2024-05-01T02:00:00+00:00",
        "--json",
    )
    assert code == 0 and [s["users"] for s in json.loads(out)["steps"]] == [0, 0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--steps", ""], "--steps"),
        (["--steps", "a,,b"], "--steps"),
        (["--steps", "a,b", "--window", "0s"], "must be positive"),
        (["--steps", "a,b", "--snapshot", "42"], "snapshot 42 does not exist"),
        (["--steps", "a,b", "--breakdown", "nope"], "cannot break down"),
        (["--steps", "a,b", "--start", "yesterday"], "--start"),
    ],
)
def test_funnel_usage_errors_exit_2(
    cli: click.Group, shop: Settings, args: list[str], message: str
) -> None:
    code, _, err = run(cli, "funnel", *args, "--json")
    assert code == 2
    error = json.loads(err)
    assert error["type"] == "UsageError" and message in error["message"]


def test_funnel_rejects_unknown_engine_and_mode(cli: click.Group, shop: Settings) -> None:
    assert run(cli, "funnel", "--steps", "a", "--engine", "spark")[0] == 2
    assert run(cli, "funnel", "--steps", "a", "--mode", "loose")[0] == 2
    assert run(cli, "funnel", "--steps", "a", "--window", "soon")[0] == 2


def test_funnel_without_table_is_a_config_error(
    cli: click.Group, sqlite_settings: Settings
) -> None:
    code, _, err = run(cli, "funnel", "--steps", "a", "--json")
    assert code == 2 and json.loads(err)["type"] == "ConfigError"


def test_engine_registry_runs_a_registered_engine(shop: Settings) -> None:
    from lakehouse.funnels import FunnelRequest, run_funnel
    from lakehouse.funnels.result import FunnelResult, build_steps

    calls = []

    def fake(settings: Settings, request: FunnelRequest) -> FunnelResult:
        calls.append(request.steps)
        return FunnelResult(
            build_steps(request.steps, [7], [0.0]), request.window, "window", engine="fake"
        )

    register_engine("fake", fake)
    try:
        result = run_funnel(shop, FunnelRequest(("open",), timedelta(hours=1)), engine="fake")
    finally:
        del ENGINES["fake"]
    assert calls == [("open",)] and result.steps[0].users == 7
    assert ENGINES["polars"] == "lakehouse.funnels.engines:run_polars"


def test_every_listed_engine_resolves_to_a_function() -> None:
    from lakehouse.funnels.engines import resolve_engine, run_polars

    assert {"polars", "trino", "athena"} <= set(ENGINES)
    assert resolve_engine("polars") is run_polars
    for name in ENGINES:
        assert callable(resolve_engine(name)), name
    choices = next(p for p in funnel.params if p.name == "engine").type.choices  # type: ignore[attr-defined]
    assert list(choices) == sorted(ENGINES)


def test_snapshots_lists_what_readers_can_pin(cli: click.Group, shop: Settings) -> None:
    write(shop, [ev("late", "u9", "open", 0 * M, delay=timedelta(hours=5))])
    code, out, _ = run(cli, "snapshots", "--json")
    assert code == 0
    data = json.loads(out)
    ids = [s["snapshot_id"] for s in data["snapshots"]]
    assert len(ids) == 2 and data["current_snapshot_id"] == ids[
        -1
    ] == lakehouse.current_snapshot_id(shop)
    assert [s["kind"] for s in data["snapshots"]] == ["on-time", "late"]
    assert data["snapshots"][1]["late_hours"] == ["2024-05-01T00"]
    code, out, _ = run(cli, "snapshots")
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 3 and lines[2].startswith("* ") and str(ids[-1]) in lines[2]
    assert "late" in lines[2] and str(ids[0]) in lines[1] and not lines[1].startswith("*")
    code, out, _ = run(cli, "snapshots", "--limit", "1", "--json")
    assert [s["snapshot_id"] for s in json.loads(out)["snapshots"]] == ids[-1:]


def test_snapshots_of_missing_table_exit_2(cli: click.Group, sqlite_settings: Settings) -> None:
    code, _, err = run(cli, "snapshots")
    assert code == 2 and "lakehouse init" in err
