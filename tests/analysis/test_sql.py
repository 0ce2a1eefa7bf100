"""``lakehouse sql`` / ``lakehouse.sql()`` and the ``duckdb`` funnel engine on a real
table: the ordered view and funnels (default, strict, exclusion, hold, step windows,
breakdown) equal the Polars engine and the read API, at the current and a pinned
snapshot; time filters prune data files; the CLI's JSON and exit codes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import click
import polars as pl
import pytest
from click.testing import CliRunner

import lakehouse
from lakehouse.cli.funnel_cmd import funnel as funnel_cmd
from lakehouse.cli.group import LakehouseGroup
from lakehouse.cli.sql_cmd import sql as sql_cmd
from lakehouse.demo import FUNNEL, DemoSpec, generate_events
from lakehouse.engines.duckdb import open_session
from lakehouse.funnels import FunnelRequest, run_funnel
from lakehouse.read import ORDERED_VIEW_COLUMNS, current_snapshot_id
from lakehouse.settings import Settings
from tests.analysis.conftest import write
from tests.analysis.test_funnel_query import same_steps

STEPS = tuple(FUNNEL[:4])


@dataclass(frozen=True)
class Lake:
    settings: Settings
    first_snapshot: int
    rows: int


def _clean(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Any:
    home = tmp_path_factory.mktemp("sql-lake")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LAKEHOUSE_HOME", str(home))
        mp.delenv("LAKEHOUSE_CATALOG", raising=False)
        mp.delenv("LAKEHOUSE_TABLE", raising=False)
        from lakehouse.tables import open_tables

        settings = Settings.from_env()
        open_tables(settings, create=True)
        first = _clean(
            generate_events(DemoSpec(events=3_000, seed=11), datetime(2024, 5, 4, tzinfo=UTC))
        )
        write(settings, first)
        snap = current_snapshot_id(settings)
        assert snap is not None
        more = _clean(
            generate_events(DemoSpec(events=2_000, seed=12), datetime(2024, 5, 4, tzinfo=UTC))
        )
        for r in more:
            r["event_id"] = "b-" + r["event_id"]
        write(settings, [*more, {"event_id": "bad", "user_id": "u"}])  # one rejected record
        yield Lake(settings, snap, 5_000)


def _ordered_rows(frame: pl.DataFrame) -> list[tuple[Any, ...]]:
    return sorted(frame.select("event_id", *ORDERED_VIEW_COLUMNS).iter_rows())


@pytest.mark.parametrize("pinned", [False, True])
def test_ordered_view_equals_the_read_api(lake: Lake, pinned: bool) -> None:
    snap = lake.first_snapshot if pinned else None
    got = lakehouse.sql("SELECT * FROM events_ordered", lake.settings, snapshot_id=snap)
    assert isinstance(got, pl.DataFrame)
    expected = lakehouse.ordered(lake.settings, snapshot_id=snap).collect()
    assert got.height == expected.height == (3_000 if pinned else 5_000)
    assert _ordered_rows(got) == _ordered_rows(expected)
    # a range only selects rows: positions still count the earlier events
    start = datetime(2024, 5, 3, 12, tzinfo=UTC)
    end = start + timedelta(hours=6)
    got = lakehouse.sql(
        "SELECT * FROM events_ordered", lake.settings, snapshot_id=snap, start=start, end=end
    )
    expected = lakehouse.ordered(lake.settings, snapshot_id=snap, start=start, end=end).collect()
    assert 0 < got.height == expected.height
    assert _ordered_rows(got) == _ordered_rows(expected)


def test_time_range_prunes_data_files(lake: Lake) -> None:
    start = datetime(2024, 5, 3, 12, tzinfo=UTC)
    end = start + timedelta(hours=1)
    whole = open_session(lake.settings)
    part = open_session(lake.settings, start=start, end=end)
    try:
        files_in_hour = (
            lakehouse.table_health_frames(lake.settings)
            .file_sizes.filter(pl.col("partition_hour") == start)
            .height
        )
        assert whole.files == whole.files_in_snapshot > part.files == files_in_hour > 0
        [(n,)] = part.connection.execute("SELECT count(*) FROM events").fetchall()
        expected = (
            lakehouse.events(lake.settings, start=start, end=end).select(pl.len()).collect().item()
        )
        assert n == expected > 0
    finally:
        whole.close()
        part.close()


def test_rejected_view_and_duckdb_relation(lake: Lake) -> None:
    rel = lakehouse.sql("SELECT count(*) AS n FROM rejected", lake.settings, output="duckdb")
    assert rel.fetchall() == [(1,)]  # type: ignore[union-attr]
    counts = lakehouse.sql(
        "SELECT platform, count(*) AS n FROM events GROUP BY platform ORDER BY platform",
        lake.settings,
    )
    expected = (
        lakehouse.events(lake.settings).group_by("platform").len("n").sort("platform").collect()
    )
    assert counts.rows() == expected.rows()  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"mode": "strict"},
        {"exclude": ("search",)},
        {"exclude": ("search@2", "view_page@3")},
        {"hold": "session_id"},
        {"hold": "properties.page", "window": timedelta(hours=2)},
        {"hold": "platform", "exclude": ("view_page@1",)},
        {"step_windows": ((3, timedelta(minutes=5)), (4, timedelta(minutes=20)))},
        {"breakdown": "platform", "exclude": ("search",), "hold": "session_id"},
        {"mode": "strict", "hold": "session_id", "breakdown": "platform"},
        {"snapshot": True, "exclude": ("search",)},
        {"range": True, "hold": "session_id"},
    ],
)
def test_duckdb_engine_equals_polars(lake: Lake, options: dict[str, Any]) -> None:
    kw: dict[str, Any] = {"window": timedelta(hours=1)}
    kw.update({k: v for k, v in options.items() if k not in ("snapshot", "range")})
    if options.get("snapshot"):
        kw["snapshot_id"] = lake.first_snapshot
    if options.get("range"):
        kw["start"] = datetime(2024, 5, 3, 6, tzinfo=UTC)
        kw["end"] = datetime(2024, 5, 3, 20, tzinfo=UTC)
    request = FunnelRequest(STEPS, **kw)
    duck = run_funnel(lake.settings, request, engine="duckdb")
    polars = run_funnel(lake.settings, request, engine="polars")
    assert duck.engine == "duckdb" and duck.snapshot_id == polars.snapshot_id is not None
    same_steps(duck.steps, polars.steps)
    assert [g.value for g in duck.breakdown] == [g.value for g in polars.breakdown]
    for a, b in zip(duck.breakdown, polars.breakdown, strict=True):
        same_steps(a.steps, b.steps)
    # a funnel with drop-off (holding the page, which differs per step, stops everyone)
    assert duck.steps[0].users > duck.steps[-1].users
    if options.get("hold") != "properties.page":
        assert duck.steps[1].users > 0
    d, p = duck.to_dict(), polars.to_dict()
    assert {k: v for k, v in d.items() if k not in ("steps", "engine", "breakdown")} == {
        k: v for k, v in p.items() if k not in ("steps", "engine", "breakdown")
    }


@pytest.fixture
def cli() -> click.Group:
    @click.group(cls=LakehouseGroup)
    def group() -> None:
        pass

    group.add_command(sql_cmd)
    group.add_command(funnel_cmd)
    return group


def _run(cli: click.Group, lake: Lake, *args: str) -> Any:
    return CliRunner().invoke(cli, [*args, "--home", str(lake.settings.home)])


def test_sql_command_json_and_errors(cli: click.Group, lake: Lake) -> None:
    out = _run(
        cli,
        lake,
        "sql",
        "SELECT event_type, count(*) AS n FROM events GROUP BY 1 ORDER BY 1",
        "--json",
    )
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    expected = (
        lakehouse.events(lake.settings).group_by("event_type").len("n").sort("event_type").collect()
    )
    assert data == expected.to_dicts()
    pinned = _run(
        cli,
        lake,
        "sql",
        "SELECT count(*) AS n FROM events",
        "--json",
        "--snapshot",
        str(lake.first_snapshot),
    )
    assert json.loads(pinned.stdout) == [{"n": 3_000}]
    text = _run(cli, lake, "sql", "SELECT count(*) AS n FROM events_ordered")
    assert text.exit_code == 0 and "5000" in text.stdout
    bad = _run(cli, lake, "sql", "SELECT nope FROM events", "--json")
    assert bad.exit_code == 2 and json.loads(bad.stderr)["type"] == "UsageError"
    unknown = _run(cli, lake, "sql", "SELECT 1", "--snapshot", "42")
    assert unknown.exit_code == 2


def test_funnel_command_with_the_new_options(cli: click.Group, lake: Lake) -> None:
    args = [
        "funnel",
        "--steps",
        ",".join(STEPS),
        "--window",
        "1h",
        "--exclude",
        "search@2",
        "--hold",
        "session_id",
        "--step-window",
        "4=20m",
        "--json",
    ]
    duck = _run(cli, lake, *args, "--engine", "duckdb")
    polars = _run(cli, lake, *args)
    assert duck.exit_code == 0 and polars.exit_code == 0, duck.output + polars.output
    d, p = json.loads(duck.stdout), json.loads(polars.stdout)
    assert [s["users"] for s in d["steps"]] == [s["users"] for s in p["steps"]]
    assert d["exclude"] == ["search@2"] and d["hold"] == "session_id"
    assert d["step_windows_seconds"] == {"4": 1200.0}
    request = FunnelRequest(
        STEPS,
        timedelta(hours=1),
        exclude=(),
        hold="session_id",
        step_windows=((4, timedelta(minutes=20)),),
    )
    loose = run_funnel(lake.settings, request)
    # the exclusion only removes conversions
    assert [s["users"] for s in p["steps"]] <= [s.users for s in loose.steps]
    assert p["steps"][2]["users"] < loose.steps[2].users
    bad = _run(cli, lake, "funnel", "--steps", "a,b", "--exclude", "x@5")
    assert bad.exit_code == 2


HOUR_QUERY = (
    "SELECT event_id, user_id, event_type, client_ts FROM events "
    "WHERE client_ts >= TIMESTAMP '2024-05-03 12:00:00' "
    "AND client_ts < TIMESTAMP '2024-05-03 13:00:00' ORDER BY event_id"
)


def test_where_in_the_query_prunes_data_files(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    """A time filter written in the SQL (no --start/--end) opens only the files whose
    client_ts bounds meet it, and returns the rows Polars finds over every file."""
    import fsspec
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    from lakehouse.engines.duckdb import dataset
    from lakehouse.tables import open_tables

    opened: set[str] = set()

    class Counting(FSSpecHandler):
        def open_input_file(self, path: str) -> Any:
            opened.add(path)
            return super().open_input_file(path)

    monkeypatch.setattr(
        dataset, "filesystem", lambda: PyFileSystem(Counting(fsspec.filesystem("file")))
    )
    start = datetime(2024, 5, 3, 12, tzinfo=UTC)
    table = open_tables(lake.settings).events
    all_files = [t.file.file_path.removeprefix("file://") for t in table.scan().plan_files()]
    in_hour = {
        p
        for p in all_files
        if pl.read_parquet(p, columns=["client_ts"])
        .filter(pl.col("client_ts").is_between(start, start + timedelta(hours=1), closed="left"))
        .height
    }
    assert 0 < len(in_hour) < len(all_files)
    got = lakehouse.sql(HOUR_QUERY, lake.settings)
    assert isinstance(got, pl.DataFrame)
    assert opened and opened <= in_hour  # no file without a row of that hour was opened
    expected = (
        pl.concat([pl.read_parquet(p) for p in all_files], how="diagonal_relaxed")
        .filter(pl.col("client_ts").is_between(start, start + timedelta(hours=1), closed="left"))
        .select("event_id", "user_id", "event_type", "client_ts")
        .sort("event_id")
    )
    assert got.height == expected.height > 0
    assert got.rows() == expected.rows()
    # without a filter every file is read
    opened.clear()
    whole = lakehouse.sql("SELECT count(*) AS n FROM events", lake.settings)
    assert whole.item() == lake.rows  # type: ignore[union-attr]
    assert opened == set(all_files)
