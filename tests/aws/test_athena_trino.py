"""Every SQL text the Athena code sends, run on a real Trino 476 (Athena engine v3 is
Trino-based: a dialect error shows up here) against a table written by EventWriter.

``TrinoAsAthena`` stands in for the Athena client: it binds parameters the way Athena
binds ``ExecutionParameters`` (``PREPARE`` + ``EXECUTE ... USING <literals>``, the same
literal text we send to Athena) and spells Athena-only statements as Trino's equivalents
(``OPTIMIZE ... REWRITE DATA USING BIN_PACK WHERE p`` -> ``ALTER TABLE ... EXECUTE
optimize WHERE p``, same predicate; ``VACUUM`` -> ``expire_snapshots``)."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import pyarrow as pa
import pytest

from catalog import open_catalog
from lakehouse.engines.athena.funnel import run_athena
from lakehouse.engines.athena.maintenance import (
    execute_optimize,
    optimize_statements,
    run_maintenance_with_athena,
)
from lakehouse.engines.athena.results import AthenaResult, QueryExecution, QueryStats
from lakehouse.engines.athena.sql import execution_parameters, is_timestamp_tz
from lakehouse.engines.athena.views import create_ordered_view
from lakehouse.funnels.engines import FunnelRequest, run_funnel
from lakehouse.read import ordered
from lakehouse.settings import Settings, TableName
from lakehouse.trino_server import ServerOptions, TrinoError, TrinoQueryError, connect, start, stop
from maintenance import CompactionOptions, MaintenanceOptions, plan_compaction
from maintenance.runner import LAST_RUN_PROPERTY
from tests.support.components import free_port, unavailable
from tests.trino.conftest import TEST_HEAP, installed_trino
from writers import EventWriter

pytestmark = [pytest.mark.trino, pytest.mark.aws]

EVENTS = TableName("analytics", "events")
T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
TYPES = ("view", "click", "it's ok", "purchase")


def events_batch(batch: int, count: int = 60) -> list[dict[str, Any]]:
    """Events over 08:00-11:59 for 37 users; ties in client_ts (broken by event_id) and
    events 0.2 ms apart across a millisecond boundary."""
    rows = []
    for i in range(count):
        n = batch * count + i
        ts = T0 + timedelta(seconds=(n * 211) % (4 * 3600), microseconds=(n * 7919) % 1000)
        user = f"u{n % 37}"
        if n % 17 == 0:
            ts = ts.replace(microsecond=999_900)  # the next event is 0.2 ms later
        if rows and n % 17 == 1:
            ts, user = rows[-1]["client_ts"] + timedelta(microseconds=200), rows[-1]["user_id"]
        if rows and n % 23 == 5:
            ts, user = rows[-1]["client_ts"], rows[-1]["user_id"]  # a tie, ordered by event_id
        rows.append(
            {
                "event_id": f"e{n:05d}",
                "user_id": user,
                "event_type": TYPES[(n * 5 + n // 7) % len(TYPES)],
                "client_ts": ts,
                "properties": {"n": n},
            }
        )
    return rows


@dataclass
class TrinoLake:
    settings: Settings
    port: int

    def table(self) -> Any:
        return open_catalog(self.settings).load_table(EVENTS.identifier)


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrinoLake]:
    installation, java = installed_trino()
    settings = Settings(home=tmp_path_factory.mktemp("athena-trino"), table=EVENTS)
    received = T0 + timedelta(days=4)
    with EventWriter(settings, clock=lambda: received) as writer:
        for batch in range(4):  # four commits: up to four small files per hour
            writer.write(events_batch(batch))
            writer.flush()
    port = free_port()
    try:
        start(
            settings,
            ServerOptions(port=port, heap=TEST_HEAP),
            installation=installation,
            java=java,
        )
    except TrinoError as exc:
        unavailable("Trino", f"the server did not start: {exc}")
    try:
        yield TrinoLake(settings, port)
    finally:
        stop(settings, port=port)


_OPTIMIZE = re.compile(r"^OPTIMIZE (.+) REWRITE DATA USING BIN_PACK WHERE (.+)$", re.S)
_VACUUM = re.compile(r"^VACUUM (.+)$")


class TrinoAsAthena:
    """The AthenaClient interface (``execute``/``run``) on Trino."""

    _names = itertools.count()

    def __init__(self, lake: TrinoLake) -> None:
        self.conn = connect(lake.settings, lake.port)
        self.sent: list[tuple[str, list[Any] | None]] = []

    def execute(self, sql: str, params: list[Any] | None = None) -> AthenaResult:
        self.sent.append((sql, params))
        text = _VACUUM.sub(
            r"ALTER TABLE \1 EXECUTE expire_snapshots(retention_threshold => '0s')", sql
        )
        text = _OPTIMIZE.sub(r"ALTER TABLE \1 EXECUTE optimize WHERE \2", text)
        cur = self.conn.cursor()
        if params:
            name = f"athena_{next(self._names)}"
            cur.execute(f"PREPARE {name} FROM {text}")
            cur.fetchall()
            cur.execute(f"EXECUTE {name} USING {', '.join(execution_parameters(params))}")
        else:
            cur.execute(text)
        rows = cur.fetchall()
        desc = cur.description or []
        names = [d[0] for d in desc]
        arrays = [pa.array([r[i] for r in rows]) for i in range(len(names))]
        return AthenaResult(
            query_id=str(cur.query_id),
            columns=tuple(names),
            types=tuple(str(d[1]) for d in desc),
            table=pa.Table.from_arrays(arrays, names=names),
            statement_type="DML",
        )

    def run(self, sql: str, params: list[Any] | None = None) -> QueryExecution:
        result = self.execute(sql, params)
        return QueryExecution(result.query_id, "SUCCEEDED", "DDL", None, QueryStats(), 1)


def test_ordered_view_runs_on_trino_and_matches_the_read_api(lake: TrinoLake) -> None:
    athena = TrinoAsAthena(lake)
    result = create_ordered_view(lake.settings, client=athena)  # type: ignore[arg-type]
    assert result.view == "analytics.events_ordered"
    assert result.utc_columns == ("client_ts", "server_ts")
    assert [s for s, _ in athena.sent] == [
        'SELECT * FROM "analytics"."events" LIMIT 0',
        athena.sent[1][0],
    ] and athena.sent[1][0].startswith('CREATE OR REPLACE VIEW "analytics"."events_ordered" AS')
    again = create_ordered_view(lake.settings, client=athena)  # type: ignore[arg-type]
    assert again.columns == result.columns  # CREATE OR REPLACE: idempotent

    described = athena.execute('DESCRIBE "analytics"."events_ordered"').dicts()
    kinds = {row["Column"]: row["Type"] for row in described}
    assert list(kinds) == list(result.columns)
    assert not any(is_timestamp_tz(t) for t in kinds.values())  # what an Athena view needs
    assert kinds["client_ts"] == "timestamp(6)" and kinds["event_seq"] == "bigint"

    got = athena.execute('SELECT * FROM "analytics"."events_ordered"').to_polars()
    want = ordered(lake.settings).collect()
    assert got.height == want.height == 240
    joined = want.join(got, on="event_id", suffix="_athena")
    assert joined.height == want.height
    for column in ("event_seq", "prev_event_type", "millis_since_prev", "user_id", "properties"):
        assert joined[column].to_list() == joined[f"{column}_athena"].to_list(), column
    # the zoned timestamps come back as the same instants, in UTC, to the microsecond
    assert (
        joined["client_ts"].dt.replace_time_zone(None).to_list()
        == joined["client_ts_athena"].to_list()
    )
    assert (
        joined["server_ts"].dt.replace_time_zone(None).to_list()
        == joined["server_ts_athena"].to_list()
    )
    # 0.2 ms apart across a millisecond boundary: 1; a tie in client_ts: 0, by event_id
    assert (joined["millis_since_prev"] == 1).sum() > 0
    assert (joined["millis_since_prev"] == 0).sum() > 0


@pytest.mark.parametrize(
    ("steps", "window", "bounded"),
    [
        (("view", "click", "purchase"), timedelta(hours=4), False),
        (("view", "it's ok", "view", "purchase"), timedelta(hours=2), True),
    ],
)
def test_funnel_engine_on_trino_matches_polars(
    lake: TrinoLake, steps: tuple[str, ...], window: timedelta, bounded: bool
) -> None:
    request = FunnelRequest(
        steps=steps,
        window=window,
        start=T0 + timedelta(minutes=30) if bounded else None,
        end=T0 + timedelta(hours=3) if bounded else None,
    )
    athena = TrinoAsAthena(lake)
    got = run_athena(lake.settings, request, client=athena)  # type: ignore[arg-type]
    want = run_funnel(lake.settings, request, engine="polars")
    assert [s.users for s in got.steps] == [s.users for s in want.steps]
    assert got.steps[0].users > got.steps[-1].users > 0
    assert got.snapshot_id == want.snapshot_id is not None
    assert got.engine == "athena"
    sql, params = athena.sent[0]
    assert params and all(p not in sql for p in steps)  # steps only as parameters
    assert f"FOR VERSION AS OF {want.snapshot_id} AS e" in sql


def test_optimize_statements_run_on_trino_and_results_count_the_rewrite(lake: TrinoLake) -> None:
    table = lake.table()
    before = table.scan().to_arrow()
    plan = plan_compaction(table, CompactionOptions())
    assert len(plan.groups) >= 4 and plan.files > len(plan.groups)
    conn = connect(lake.settings, lake.port)
    statements = optimize_statements(plan, EVENTS)
    failing = statements[0].sql
    ran: list[str] = []

    def run(sql: str) -> str | None:
        ran.append(sql)
        cur = conn.cursor()
        if sql == failing:  # one statement fails: its hour's groups fail, the rest go on
            raise TrinoQueryError("injected failure")
        cur.execute(_OPTIMIZE.sub(r"ALTER TABLE \1 EXECUTE optimize WHERE \2", sql))
        cur.fetchall()
        return str(cur.query_id)

    result = execute_optimize(table, plan, run=run, table_name=EVENTS)
    assert ran == [s.sql for s in statements]
    failed_groups = len(statements[0].groups)
    assert result.groups_failed == failed_groups
    assert {f.hour for f in result.failures} == {statements[0].groups[0].group_id.split("#")[0]}
    assert result.groups_committed == len(plan.groups) - failed_groups
    done = [g for s in statements[1:] for g in s.groups]
    assert result.files_rewritten == sum(len(g.files) for g in done)
    assert result.records_rewritten == result.records_added == sum(g.records for g in done)
    assert (
        result.replace_commits == len(statements) - 1 and result.files_added == len(statements) - 1
    )
    assert result.bytes_rewritten == sum(g.bytes for g in done) and result.bytes_added > 0

    table.refresh()
    after = table.scan().to_arrow()
    assert sorted(after["event_id"].to_pylist()) == sorted(before["event_id"].to_pylist())
    files_per_hour = (
        pl.from_arrow(table.inspect.files().select(["partition"]))
        .unnest("partition")
        .group_by("client_ts_hour")
        .len()
    )
    by_hour = dict(files_per_hour.iter_rows())
    for item in statements[1:]:
        assert by_hour[item.hour] == 1  # the hour's small files became one
    assert by_hour[statements[0].hour] == len(statements[0].groups[0].files) + sum(
        len(g.files) for g in statements[0].groups[1:]
    )


def test_athena_maintenance_run_through_trino(lake: TrinoLake) -> None:
    table = lake.table()
    snapshots = len(table.metadata.snapshots)
    athena = TrinoAsAthena(lake)
    result = run_maintenance_with_athena(
        lake.settings,
        MaintenanceOptions(compaction=CompactionOptions()),
        table=table,
        client=athena,  # type: ignore[arg-type]
    )
    assert result.ok, result.to_dict()
    assert result.compaction is not None and result.expiry is not None
    sent = [s for s, _ in athena.sent]
    assert sent[-1] == "VACUUM analytics.events"
    assert all(
        s.startswith("OPTIMIZE analytics.events REWRITE DATA USING BIN_PACK WHERE ")
        for s in sent[:-1]
    )
    assert (
        result.compaction.groups_committed == result.compaction.groups_planned == len(sent) - 1 >= 1
    )
    assert result.expiry.snapshots_expired == snapshots + len(sent) - 1 - 1  # all but the current
    table.refresh()
    recorded = json.loads(table.properties[LAST_RUN_PROPERTY])
    assert recorded["run_id"] == result.run_id and recorded["ok"] is True
    assert recorded["engine"] == "athena"
    assert recorded["files_rewritten"] == result.compaction.files_rewritten > 0
    # nothing left to do: a second run plans nothing and still vacuums
    again = run_maintenance_with_athena(
        lake.settings,
        MaintenanceOptions(),
        client=athena,  # type: ignore[arg-type]
    )  # the table opened from the settings this time
    assert again.compaction is not None and again.compaction.groups_planned == 0
    assert again.expiry is not None and again.expiry.snapshots_expired == 0


@pytest.mark.parametrize(
    "options",
    [
        {"exclude": ("click@1",)},
        {"hold": "user_id", "mode": "strict", "breakdown": "event_type"},
        {"step_windows": ((2, timedelta(minutes=20)),)},
    ],
)
def test_funnel_options_on_trino_as_athena_match_polars(
    lake: TrinoLake, options: dict[str, Any]
) -> None:
    """Beyond the plain window funnel, Athena gets the shared query (Trino's dialect)."""
    request = FunnelRequest(
        steps=("view", "purchase", "view"), window=timedelta(hours=2), **options
    )
    athena = TrinoAsAthena(lake)
    got = run_athena(lake.settings, request, client=athena)  # type: ignore[arg-type]
    want = run_funnel(lake.settings, request, engine="polars")
    assert [s.users for s in got.steps] == [s.users for s in want.steps]
    assert [(g.value, [s.users for s in g.steps]) for g in got.breakdown] == [
        (g.value, [s.users for s in g.steps]) for g in want.breakdown
    ]
    assert got.steps[0].users > 0
    sql, params = athena.sent[0]
    assert params
    assert "per_sequence" in sql and all(p not in sql for p in request.steps)
