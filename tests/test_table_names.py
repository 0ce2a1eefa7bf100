"""Names and creation: a companion's name is never an events table, and only ``init``
(or ``ingest --create``, or the Python writer, which creates by default) creates a table
or a home folder. Checked with the real commands on real files, on the embedded SQLite
catalog and on a real PostgreSQL catalog."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest
from click.testing import CliRunner

from catalog import open_catalog
from lakehouse.cli.main import cli
from lakehouse.errors import ConfigError
from lakehouse.settings import Settings, TableName
from lakehouse.tables import ensure_tables, load_tables
from writers import EventWriter

COMPANION_NAMES = [
    "analytics.events_ingested",
    "analytics.events_rejected",
    "analytics.events_ordered",
    "analytics.clicks_INGESTED",
    "other.anything_rejected",
]


def landing(root: Path, n: int = 5) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    lines = [
        json.dumps(
            {
                "event_id": f"e{i}",
                "user_id": "u1",
                "event_type": "view",
                "client_ts": f"2024-05-01T10:0{i}:00Z",
                "server_ts": f"2024-05-01T10:0{i}:01Z",
            }
        )
        for i in range(n)
    ]
    (root / "part-0.jsonl").write_text("\n".join(lines) + "\n")
    return root


def tables_in(settings: Settings, namespace: str = "analytics") -> set[str]:
    cat = open_catalog(settings)
    if (namespace,) not in cat.list_namespaces():
        return set()
    return {".".join(t) for t in cat.list_tables(namespace)}


def events_of(settings: Settings) -> pa.Table:
    return load_tables(open_catalog(settings), settings.table).events.scan().to_arrow()


def test_companion_suffixes_are_those_the_project_uses() -> None:
    from lakehouse.settings import COMPANION_SUFFIXES

    name = TableName("analytics", "events")
    assert {name.sibling(s).name for s in COMPANION_SUFFIXES} == {
        "events_rejected",
        "events_ingested",
        "events_ordered",
    }


@pytest.mark.parametrize("table", COMPANION_NAMES)
def test_companion_names_are_refused_by_init_and_ingest(
    settings: Settings, tmp_path: Path, table: str
) -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["init"]).exit_code == 0
    before = tables_in(settings) | tables_in(settings, "other")
    zone = landing(tmp_path / "landing")
    for args in (
        ["init", "--table", table],
        ["ingest", str(zone), "--table", table, "--create"],
        ["health", "--table", table],
    ):
        result = runner.invoke(cli, [*args, "--json"])
        assert result.exit_code == 2, (args, result.output)
        error = json.loads(result.output)
        assert error["type"] == "ConfigError"
        assert "cannot be an events table" in error["message"]
    assert tables_in(settings) | tables_in(settings, "other") == before
    # the ingest log of analytics.events is untouched: nothing was ingested
    log = load_tables(open_catalog(settings), settings.table).ingested
    assert log.current_snapshot() is None


def test_companion_name_in_the_environment_is_a_config_error(home: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be an events table"):
        Settings.from_env({"LAKEHOUSE_TABLE": "analytics.events_ingested"})
    result = CliRunner().invoke(cli, ["init"], env={"LAKEHOUSE_TABLE": "a.b_rejected"})
    assert result.exit_code == 2 and "cannot be an events table" in result.output
    assert not home.exists()


def test_companion_names_are_refused_by_the_python_api(settings: Settings) -> None:
    bad = TableName("analytics", "events_ingested")  # built directly: no parse check
    with pytest.raises(ConfigError, match="cannot be an events table"):
        ensure_tables(open_catalog(settings), bad)
    with pytest.raises(ConfigError, match="cannot be an events table"):
        EventWriter(settings.with_table(bad))
    assert tables_in(settings) == set()


def test_a_plain_name_that_merely_contains_a_suffix_is_accepted(settings: Settings) -> None:
    for name in ("events_ingestedx", "ingested_events", "rejected"):
        ensure_tables(open_catalog(settings), TableName("analytics", name))
    assert "analytics.ingested_events" in tables_in(settings)


def test_ingest_into_a_missing_table_says_to_run_init(settings: Settings, tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["init"]).exit_code == 0
    zone = landing(tmp_path / "landing")
    typo = runner.invoke(cli, ["ingest", str(zone), "--table", "analytics.typo", "--json"])
    assert typo.exit_code == 2, typo.output
    assert "lakehouse init" in json.loads(typo.output)["message"]
    assert tables_in(settings) == {
        "analytics.events",
        "analytics.events_rejected",
        "analytics.events_ingested",
    }
    # --create: the table and its companions are created and the files ingested
    created = runner.invoke(
        cli, ["ingest", str(zone), "--table", "analytics.typo", "--create", "--json"]
    )
    assert created.exit_code == 0, created.output
    assert json.loads(created.output)["records_written"] == 5
    assert {"analytics.typo", "analytics.typo_rejected", "analytics.typo_ingested"} <= tables_in(
        settings
    )
    rows = events_of(settings.with_table(TableName("analytics", "typo")))
    assert sorted(rows.column("event_id").to_pylist()) == [f"e{i}" for i in range(5)]
    # and into an existing table, no flag is needed
    again = runner.invoke(cli, ["ingest", str(zone), "--json"])
    assert again.exit_code == 0 and json.loads(again.output)["records_written"] == 5


def test_ingest_without_init_creates_no_home(home: Path, tmp_path: Path) -> None:
    zone = landing(tmp_path / "landing")
    result = CliRunner().invoke(cli, ["ingest", str(zone), "--json"])
    assert result.exit_code == 2, result.output
    assert "lakehouse init" in json.loads(result.output)["message"]
    assert not home.exists()
    created = CliRunner().invoke(cli, ["ingest", str(zone), "--create", "--json"])
    assert created.exit_code == 0 and json.loads(created.output)["records_written"] == 5
    assert (home / "catalog.db").is_file()


@pytest.mark.parametrize(
    "args",
    [
        ["health"],
        ["snapshots"],
        ["maintain", "run"],
        ["maintain", "plan"],
        ["funnel", "--steps", "view,buy", "--window", "1h"],
    ],
)
def test_read_and_maintenance_commands_create_no_home(
    tmp_path: Path, home: Path, args: list[str]
) -> None:
    missing = tmp_path / "no" / "such" / "dir"
    result = CliRunner().invoke(cli, [*args, "--home", str(missing), "--json"])
    assert result.exit_code == 2, result.output
    assert "lakehouse init" in json.loads(result.output)["message"]
    assert not (tmp_path / "no").exists()


def test_config_show_answers_without_creating_the_home(tmp_path: Path, home: Path) -> None:
    missing = tmp_path / "no" / "such" / "dir"
    result = CliRunner().invoke(cli, ["config", "show", "--home", str(missing), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["home"] == str(missing)
    assert not (tmp_path / "no").exists()


def test_an_empty_home_folder_gets_no_catalog(tmp_path: Path, home: Path) -> None:
    home.mkdir()
    result = CliRunner().invoke(cli, ["health", "--json"])
    assert result.exit_code == 2, result.output
    assert list(home.iterdir()) == []


def test_python_writer_creates_by_default_and_refuses_with_create_false(
    settings: Settings,
) -> None:
    missing = settings.with_table(TableName("analytics", "elsewhere"))
    with pytest.raises(ConfigError, match="lakehouse init"):
        EventWriter(missing, create=False)
    assert tables_in(settings) == set()
    row = {
        "event_id": "w1",
        "user_id": "u",
        "event_type": "view",
        "client_ts": "2024-05-01T10:00:00Z",
    }
    with EventWriter(missing, clock=lambda: datetime(2024, 5, 1, 10, 5, tzinfo=UTC)) as writer:
        writer.write([row])
    assert tables_in(settings) == {
        "analytics.elsewhere",
        "analytics.elsewhere_rejected",
        "analytics.elsewhere_ingested",
    }
    with EventWriter(missing, create=False) as writer:  # it exists now
        writer.write([{**row, "event_id": "w2"}])
    ids = events_of(missing).column("event_id").to_pylist()
    assert sorted(ids) == ["w1", "w2"]
