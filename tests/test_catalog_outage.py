"""A catalog that cannot be reached is a retryable :class:`CatalogUnavailable`, never a raw
SQLAlchemy error (bug 4): the writers and maintenance raise it during an outage and work
again, losing nothing, once the server is back; ``lakehouse ingest`` exits 75 (transient);
``maintain serve`` reports a failed run in one line and carries on.

The outages are real: a private PostgreSQL cluster (not the session's shared server) is
stopped and started again."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from catalog import open_catalog
from lakehouse.cli.common import EXIT_UNAVAILABLE
from lakehouse.cli.main import cli
from lakehouse.errors import CatalogUnavailable, ConfigError, RetryableError
from lakehouse.settings import Settings
from lakehouse.tables import ensure_tables, load_tables
from maintenance import LAST_RUN_PROPERTY, LEASE_PROPERTY, MaintenanceOptions, run_maintenance
from tests.conftest import postgres_catalog_env
from tests.support.components import unavailable
from tests.support.postgres import PostgresServer, PostgresUnavailable, running_postgres

PASSWORD = "Pw-0f-the-catalog"


def _event(i: int) -> dict[str, str]:
    return {
        "event_id": f"o{i}",
        "user_id": f"u{i % 3}",
        "event_type": "view",
        "client_ts": f"2024-05-01T10:{i % 60:02d}:00Z",
    }


def _ids(settings: Settings) -> list[str]:
    events = load_tables(open_catalog(settings), settings.table).events
    return sorted(events.scan(selected_fields=("event_id",)).to_arrow()["event_id"].to_pylist())


def test_a_refused_connection_is_transient_not_a_config_error(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No server needed: nothing listens on port 1."""
    monkeypatch.setenv("LAKEHOUSE_CATALOG", "pg")
    monkeypatch.setenv("PYICEBERG_CATALOG__PG__TYPE", "sql")
    monkeypatch.setenv(
        "PYICEBERG_CATALOG__PG__URI", f"postgresql+psycopg2://lake:{PASSWORD}@127.0.0.1:1/db"
    )
    monkeypatch.setenv("PYICEBERG_CATALOG__PG__WAREHOUSE", (home / "w").as_uri())
    with pytest.raises(CatalogUnavailable) as caught:
        open_catalog(Settings.from_env())
    assert caught.value.retryable and isinstance(caught.value, RetryableError)
    message = str(caught.value)
    assert "catalog 'pg'" in message and "unreachable" in message and "127.0.0.1:1" in message
    assert PASSWORD not in message and "[SQL" not in message

    for args in (["init"], ["ingest", str(home), "--json"], ["maintain", "run", "--json"]):
        result = CliRunner().invoke(cli, args, catch_exceptions=False)
        assert result.exit_code == EXIT_UNAVAILABLE == 75, result.output
        assert PASSWORD not in result.output and "Traceback" not in result.output
    error = json.loads(result.stderr)
    assert error["type"] == "CatalogUnavailable" and error["retryable"] is True


def test_a_bad_catalog_option_is_still_a_config_error(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAKEHOUSE_CATALOG", "pg")
    monkeypatch.setenv("PYICEBERG_CATALOG__PG__TYPE", "sql")
    monkeypatch.setenv(
        "PYICEBERG_CATALOG__PG__URI",
        f"postgresql+psycopg2://lake:{PASSWORD}@127.0.0.1:1/db?sslmode=nonsense",
    )
    with pytest.raises(ConfigError) as caught:
        open_catalog(Settings.from_env())
    assert PASSWORD not in str(caught.value)


# --- real outages ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def outage_server() -> Iterator[PostgresServer]:
    """A PostgreSQL cluster of this module's own: the tests stop it."""
    try:
        with running_postgres() as server:
            yield server
    except PostgresUnavailable as exc:
        unavailable("PostgreSQL", str(exc))


@pytest.fixture
def pg_settings(
    outage_server: PostgresServer, home: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    monkeypatch.setenv("LAKEHOUSE_CATALOG", postgres_catalog_env(outage_server, home, monkeypatch))
    settings = Settings.from_env()
    ensure_tables(open_catalog(settings), settings.table)
    yield settings


@pytest.mark.postgres
@pytest.mark.slow
def test_writer_and_maintenance_during_an_outage(
    pg_settings: Settings, outage_server: PostgresServer
) -> None:
    from writers import EventWriter

    settings = pg_settings
    tables = load_tables(open_catalog(settings), settings.table)
    writer = EventWriter(settings, tables=tables)
    writer.write([_event(i) for i in range(5)])
    writer.flush()
    writer.write([_event(i) for i in range(5, 12)])
    outage_server.stop("immediate")
    try:
        for name, call in (
            ("flush", writer.flush),
            ("run_maintenance", lambda: run_maintenance(tables.events)),
            ("run_maintenance without a lease", lambda: run_maintenance(
                tables.events, MaintenanceOptions(lease=False))),
            ("open_catalog", lambda: open_catalog(settings)),
        ):  # fmt: skip
            try:
                result = call()
            except CatalogUnavailable as exc:
                assert exc.retryable and "catalog 'pg'" in str(exc), name
                continue
            # Without the lease every job fails on its own (recorded), the run returns.
            assert name == "run_maintenance without a lease", name
            assert not result.ok
            assert {f.error_type for f in result.job_failures} == {"CatalogUnavailable"}
    finally:
        outage_server.start()
    # The same writer commits its batch once the server is back; nothing lost, nothing twice.
    result = writer.flush()
    assert result.records_written == 7
    writer.close()
    assert _ids(settings) == sorted(f"o{i}" for i in range(12))
    done = run_maintenance(load_tables(open_catalog(settings), settings.table).events)
    assert done.ok and done.skipped_reason is None
    assert _ids(settings) == sorted(f"o{i}" for i in range(12))


@pytest.mark.postgres
@pytest.mark.slow
def test_ingest_during_an_outage_exits_75_then_completes(
    pg_settings: Settings, outage_server: PostgresServer, tmp_path: Path
) -> None:
    zone = tmp_path / "zone"
    zone.mkdir()
    (zone / "a.ndjson").write_text("\n".join(json.dumps(_event(i)) for i in range(8)) + "\n")
    outage_server.stop("fast")
    try:
        down = CliRunner().invoke(cli, ["ingest", str(zone), "--json"], catch_exceptions=False)
        text = CliRunner().invoke(cli, ["ingest", str(zone)], catch_exceptions=False)
    finally:
        outage_server.start()
    assert down.exit_code == 75, down.output
    error = json.loads(down.stderr)
    assert error["type"] == "CatalogUnavailable" and error["retryable"] is True
    assert "unreachable" in error["message"] and "Traceback" not in down.output
    assert text.exit_code == 75 and text.stderr.startswith("error: catalog 'pg'")
    up = CliRunner().invoke(cli, ["ingest", str(zone), "--json"], catch_exceptions=False)
    assert up.exit_code == 0, up.output
    assert json.loads(up.stdout)["records_written"] == 8
    assert _ids(pg_settings) == sorted(f"o{i}" for i in range(8))


@pytest.mark.postgres
@pytest.mark.slow
def test_serve_command_survives_runs_that_fail(
    pg_settings: Settings, outage_server: PostgresServer
) -> None:
    outage_server.stop("immediate")
    try:
        result = CliRunner().invoke(
            cli, ["maintain", "serve", "--every", "0s", "--max-runs", "2"], catch_exceptions=False
        )
        as_json = CliRunner().invoke(
            cli,
            ["maintain", "serve", "--every", "0s", "--max-runs", "1", "--json"],
            catch_exceptions=False,
        )
    finally:
        outage_server.start()
    assert result.exit_code == 0, result.output
    failed = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(failed) == 2 and all(
        "maintenance run failed (will run again)" in ln for ln in failed
    )
    assert "Traceback" not in result.output
    assert as_json.exit_code == 0
    record = json.loads(as_json.stderr.strip())
    assert record["type"] == "CatalogUnavailable" and record["retryable"] is True


@pytest.mark.postgres
@pytest.mark.slow
def test_serve_loop_carries_on_through_an_outage(
    pg_settings: Settings, outage_server: PostgresServer
) -> None:
    from lakehouse.cli.maintain_cmd import serve_loop
    from writers import EventWriter

    with EventWriter(pg_settings) as writer:
        writer.write([_event(i) for i in range(6)])

    def last_run() -> str | None:
        table = load_tables(open_catalog(pg_settings), pg_settings.table).events
        return table.properties.get(LAST_RUN_PROPERTY)

    stop = threading.Event()
    outcome: dict[str, object] = {}

    def serve() -> None:
        try:
            outcome["counts"] = serve_loop(
                pg_settings, MaintenanceOptions(), every=timedelta(seconds=0.2), stop=stop
            )
        except BaseException as exc:  # the loop must never end this way
            outcome["error"] = exc

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        first = _wait_for(lambda: last_run(), None)
        outage_server.stop("immediate")
        time.sleep(2.0)  # several runs fail meanwhile
        assert thread.is_alive()
    finally:
        outage_server.start()
    _wait_for(lambda: last_run() if last_run() != first else None, None)
    stop.set()
    thread.join(timeout=120)
    assert not thread.is_alive() and "error" not in outcome
    runs, failed = outcome["counts"]  # type: ignore[misc]
    assert failed >= 1 and runs > failed
    table = load_tables(open_catalog(pg_settings), pg_settings.table).events
    assert LEASE_PROPERTY not in table.properties  # no lease left behind
    assert _ids(pg_settings) == sorted(f"o{i}" for i in range(6))


def _wait_for(probe: object, missing: object, timeout: float = 120) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = probe()  # type: ignore[operator]
        except CatalogUnavailable:
            value = missing
        if value is not missing:
            return value
        time.sleep(0.2)
    raise AssertionError("timed out")
