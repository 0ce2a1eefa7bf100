"""A real Trino reads what pyiceberg wrote: same rows, same values, time travel, views,
maintenance procedures, and writes made while it runs."""

from __future__ import annotations

import json
import os
import sqlite3
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.compute as pc
import pytest
from click.testing import CliRunner

from catalog import open_catalog
from lakehouse.cli.main import cli
from lakehouse.settings import TableName
from lakehouse.tables import ensure_tables
from lakehouse.trino_server import query, status
from tests.trino.conftest import TrinoServer, make_events

pytestmark = pytest.mark.trino

COLUMNS = "event_id, user_id, event_type, client_ts, server_ts, session_id, properties"


def q(
    server: TrinoServer, sql: str, params: list[object] | None = None
) -> list[tuple[object, ...]]:
    return list(query(sql, params, settings=server.settings, port=server.port).rows)


def test_rows_and_values_equal_what_pyiceberg_wrote(trino_server: TrinoServer) -> None:
    expected = trino_server.events().scan().to_arrow().sort_by("event_id")
    rows = q(trino_server, f"SELECT {COLUMNS} FROM events ORDER BY event_id")
    assert len(rows) == expected.num_rows == 200
    assert rows == [tuple(r.values()) for r in expected.to_pylist()]
    # Nulls, microseconds and non-ASCII text survive the trip.
    assert (
        sum(1 for r in rows if r[5] is None)
        == pc.sum(pc.is_null(expected["session_id"])).as_py()
        > 0
    )
    assert any(r[3].microsecond for r in rows)  # type: ignore[union-attr]
    assert any("vé" in (r[6] or "") for r in rows)


def test_aggregates_match(trino_server: TrinoServer) -> None:
    arrow = trino_server.events().scan().to_arrow()
    want = Counter(
        (t, ts.replace(minute=0, second=0, microsecond=0))
        for t, ts in zip(
            arrow["event_type"].to_pylist(), arrow["client_ts"].to_pylist(), strict=True
        )
    )
    rows = q(
        trino_server,
        "SELECT event_type, date_trunc('hour', client_ts), count(*) FROM events GROUP BY 1, 2",
    )
    assert {(t, h): n for t, h, n in rows} == dict(want)
    [(users,)] = q(
        trino_server, "SELECT count(DISTINCT user_id) FROM events WHERE event_type = ?", ["click"]
    )
    assert users == len(
        set(pc.filter(arrow["user_id"], pc.equal(arrow["event_type"], "click")).to_pylist())
    )


def test_for_version_as_of_reads_the_first_snapshot(trino_server: TrinoServer) -> None:
    snap = trino_server.first_snapshot_id
    rows = q(
        trino_server, f"SELECT event_id FROM events FOR VERSION AS OF {snap} ORDER BY event_id"
    )
    assert [r[0] for r in rows] == sorted(trino_server.first_batch_ids)
    assert len(rows) == 120
    snapshots = q(trino_server, 'SELECT snapshot_id FROM "events$snapshots" ORDER BY committed_at')
    assert [s[0] for s in snapshots] == [s.snapshot_id for s in trino_server.events().snapshots()]


def test_a_view_can_be_created_and_writers_do_not_see_it(trino_server: TrinoServer) -> None:
    q(
        trino_server,
        "CREATE OR REPLACE VIEW analytics.user_counts AS "
        "SELECT user_id, count(*) AS events FROM events GROUP BY user_id",
    )
    try:
        rows = q(trino_server, "SELECT user_id, events FROM user_counts ORDER BY user_id")
        arrow = trino_server.events().scan().to_arrow()
        assert dict(rows) == dict(Counter(arrow["user_id"].to_pylist()))
        db = trino_server.settings.home / "catalog.db"
        with sqlite3.connect(db) as conn:
            kinds = dict(
                conn.execute(
                    "SELECT table_name, iceberg_type FROM iceberg_tables WHERE catalog_name = 'lakehouse'"
                ).fetchall()
            )
        assert kinds["user_counts"] == "VIEW" and kinds["events"] == "TABLE"
        listed = open_catalog(trino_server.settings).list_tables("analytics")
        assert ("analytics", "user_counts") not in listed
        assert ("analytics", "events") in listed
    finally:
        q(trino_server, "DROP VIEW IF EXISTS analytics.user_counts")


def test_appends_made_while_running_are_visible(trino_server: TrinoServer) -> None:
    settings = trino_server.settings.with_table(TableName("live", "events"))
    tables, _ = ensure_tables(open_catalog(settings), settings.table)
    for expected in (10, 25):
        tables.events.append(make_events(tables.events, expected - tables.events.scan().count()))
        [(count,)] = q(trino_server, "SELECT count(*) FROM lakehouse.live.events")
        assert count == expected


def test_expire_snapshots_and_remove_orphan_files_run_with_zero_retention(
    trino_server: TrinoServer,
) -> None:
    settings = trino_server.settings.with_table(TableName("scratch", "events"))
    tables, _ = ensure_tables(open_catalog(settings), settings.table)
    for _ in range(3):
        tables.events.append(make_events(tables.events, 10))
    data_dir = Path(tables.events.location().removeprefix("file://")) / "data"
    orphan = data_dir / "orphan-from-a-failed-commit.parquet"
    orphan.write_bytes(b"not referenced by any snapshot")
    old = (datetime.now(UTC) - timedelta(hours=1)).timestamp()
    os.utime(orphan, (old, old))

    q(
        trino_server,
        "ALTER TABLE scratch.events EXECUTE expire_snapshots(retention_threshold => '0s')",
    )
    q(
        trino_server,
        "ALTER TABLE scratch.events EXECUTE remove_orphan_files(retention_threshold => '0s')",
    )

    [(snapshots,)] = q(trino_server, 'SELECT count(*) FROM scratch."events$snapshots"')
    assert snapshots == 1
    assert not orphan.exists()
    reloaded = open_catalog(settings).load_table(settings.table.identifier)
    assert len(reloaded.snapshots()) == 1
    assert reloaded.scan().to_arrow().num_rows == 30


def test_query_result_converts_to_arrow(trino_server: TrinoServer) -> None:
    result = query(
        "SELECT event_type, count(*) AS n FROM events GROUP BY 1 ORDER BY 1",
        settings=trino_server.settings,
        port=trino_server.port,
    )
    table = result.to_arrow()
    assert table.column_names == ["event_type", "n"] and result.types == ("varchar", "bigint")
    assert sum(table["n"].to_pylist()) == 200
    assert result.dicts()[0]["event_type"] == "click"


def _listening_addresses(port: int) -> set[str]:
    found = set()
    for name in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/net/{name}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


def test_listens_on_loopback_only(trino_server: TrinoServer) -> None:
    if not Path("/proc/net/tcp").exists():
        pytest.skip("needs /proc/net/tcp (Linux)")
    addresses = _listening_addresses(trino_server.port)
    loopback = {"0100007F", "0000000000000000FFFF00000100007F"}  # 127.0.0.1 as v4, v4-mapped v6
    assert addresses and addresses <= loopback, addresses


def test_status_and_cli_against_the_running_server(trino_server: TrinoServer) -> None:
    st = status(trino_server.settings, port=trino_server.port)
    assert st.running and st.responding and st.version == "476" and st.starting is False
    assert st.catalogs == ("lakehouse",)
    assert st.server_log.exists() and "SERVER STARTED" in st.server_log.read_text(errors="replace")

    runner = CliRunner()
    common = ["--home", str(trino_server.settings.home), "--port", str(trino_server.port)]
    out = runner.invoke(cli, ["trino", "status", *common, "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["running"] is True and data["pid"] == st.pid and data["version"] == "476"

    out = runner.invoke(
        cli, ["trino", "sql", *common, "--json", "SELECT count(*) AS n FROM events"]
    )
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["rows"] == [{"n": 200}]

    out = runner.invoke(
        cli, ["trino", "sql", *common, "SELECT user_id FROM events WHERE event_id = 'evt-000000'"]
    )
    assert out.exit_code == 0 and "user-0" in out.stdout

    out = runner.invoke(cli, ["trino", "sql", *common, "SELECT no_such_column FROM events"])
    assert out.exit_code == 1 and "no_such_column" in out.stderr

    out = runner.invoke(cli, ["trino", "start", *common, "--no-install"])
    assert out.exit_code == 0 and "already running" in out.stdout
    assert status(trino_server.settings, port=trino_server.port).pid == st.pid
