"""The SQL texts sent to Athena, checked character by character (identifier quoting,
literals, WHERE ranges). Each of them also runs on a real Trino in test_athena_trino.py;
OPTIMIZE and VACUUM exist only on Athena, so their exact text is pinned here."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from lakehouse.engines.athena.funnel import athena_funnel_query
from lakehouse.engines.athena.maintenance import optimize_statements
from lakehouse.engines.athena.sql import (
    check_ref,
    create_view_sql,
    execution_parameters,
    maintenance_ref,
    optimize_sql,
    ordered_view_select,
    qualified,
    quote_identifier,
    sql_literal,
    table_ref,
    vacuum_sql,
)
from lakehouse.engines.athena.views import columns_probe_sql, ordered_view_statement
from lakehouse.errors import UsageError
from lakehouse.funnels import funnel_sql
from lakehouse.funnels.engines import FunnelRequest
from lakehouse.funnels.query import funnel_query
from lakehouse.settings import TableName
from maintenance.inventory import hour_of
from maintenance.plan import CompactionOptions, CompactionPlan, RewriteGroup

EVENTS = TableName("analytics", "events")
H8 = datetime(2026, 3, 1, 8, tzinfo=UTC)


def test_identifiers_and_table_references() -> None:
    assert quote_identifier("events") == '"events"'
    assert quote_identifier('we"ird') == '"we""ird"'
    assert qualified("analytics", "events") == '"analytics"."events"'
    assert table_ref(EVENTS) == '"analytics"."events"'
    assert table_ref(EVENTS, snapshot_id=42) == '"analytics"."events" FOR VERSION AS OF 42'
    for bad in ("", "a\nb"):
        with pytest.raises(UsageError):
            quote_identifier(bad)
    with pytest.raises(UsageError):
        table_ref(EVENTS, snapshot_id="42")  # type: ignore[arg-type]
    for ref in ('"a"; DROP TABLE x', '"a" -- c', '"a" /* c */', "a ?"):
        with pytest.raises(UsageError, match="not a table reference"):
            check_ref(ref)


def test_literals_for_execution_parameters() -> None:
    assert sql_literal("view") == "'view'"
    assert sql_literal("it's ? -- not sql") == "'it''s ? -- not sql'"
    assert sql_literal(86_400_000_000) == "86400000000"
    assert sql_literal(True) == "TRUE" and sql_literal(None) == "NULL"
    assert sql_literal(1.5) == "DOUBLE '1.5'" and sql_literal(float("nan")) == "DOUBLE 'NaN'"
    assert sql_literal(Decimal("1.50")) == "DECIMAL '1.50'"
    assert sql_literal(date(2024, 5, 1)) == "DATE '2024-05-01'"
    paris = timezone(timedelta(hours=2))
    assert (
        sql_literal(datetime(2024, 5, 1, 12, 0, 0, 5, tzinfo=paris))
        == "TIMESTAMP '2024-05-01 10:00:00.000005 UTC'"
    )
    assert sql_literal(datetime(2024, 5, 1, 10)) == "TIMESTAMP '2024-05-01 10:00:00.000000'"
    assert execution_parameters(["a", 1]) == ["'a'", "1"]
    with pytest.raises(UsageError, match="at most 1024"):
        execution_parameters(["x" * 1023])
    with pytest.raises(UsageError, match="cannot pass a list"):
        sql_literal(["a"])


def test_maintenance_statements_exact_text() -> None:
    predicate = (
        "client_ts >= TIMESTAMP '2026-03-01 08:00:00 UTC' "
        "AND client_ts < TIMESTAMP '2026-03-01 09:00:00 UTC'"
    )
    assert _group(H8, 1, 1).sql_predicate("client_ts") == predicate
    # Athena parses OPTIMIZE/VACUUM like its Hive DDL: plain names, backticks for a
    # table name starting with "_" (never around the database), no double quotes
    assert maintenance_ref(EVENTS) == "analytics.events"
    assert maintenance_ref(TableName("analytics", "_events")) == "analytics.`_events`"
    assert optimize_sql(EVENTS, predicate) == (
        "OPTIMIZE analytics.events REWRITE DATA USING BIN_PACK WHERE " + predicate
    )
    assert optimize_sql(EVENTS) == "OPTIMIZE analytics.events REWRITE DATA USING BIN_PACK"
    assert vacuum_sql(EVENTS) == "VACUUM analytics.events"
    assert vacuum_sql(TableName("lake_1", "_raw")) == "VACUUM lake_1.`_raw`"
    for bad in ("1 = 1; VACUUM x", "x = ?", "1 = 1 -- c"):
        with pytest.raises(UsageError, match="not a partition predicate"):
            optimize_sql(EVENTS, bad)
    with pytest.raises(UsageError, match="cannot be named in OPTIMIZE/VACUUM"):
        vacuum_sql(TableName("analytics", "ev-ents"))


def _group(hour_start: datetime, part: int, parts: int) -> RewriteGroup:
    hour = hour_of(hour_start)
    return RewriteGroup(f"{hour_start:%Y-%m-%dT%H}#{part}", hour, part, parts, ("small-files",), ())


def test_one_optimize_per_planned_hour_with_the_plan_s_own_range() -> None:
    h11 = H8 + timedelta(hours=3)
    plan = CompactionPlan(
        table="analytics.events",
        snapshot_id=1,
        planned_at=H8 + timedelta(days=1),
        options=CompactionOptions(),
        groups=(_group(h11, 1, 1), _group(H8, 2, 2), _group(H8, 1, 2)),
        hours_total=3,
        hours_hot=0,
        hours_clean=1,
    )
    statements = optimize_statements(plan, EVENTS)
    assert [(s.hour, [g.group_id for g in s.groups]) for s in statements] == [
        (hour_of(H8), ["2026-03-01T08#1", "2026-03-01T08#2"]),
        (hour_of(h11), ["2026-03-01T11#1"]),
    ]
    assert [s.sql for s in statements] == [
        "OPTIMIZE analytics.events REWRITE DATA USING BIN_PACK WHERE "
        "client_ts >= TIMESTAMP '2026-03-01 08:00:00 UTC' "
        "AND client_ts < TIMESTAMP '2026-03-01 09:00:00 UTC'",
        "OPTIMIZE analytics.events REWRITE DATA USING BIN_PACK WHERE "
        "client_ts >= TIMESTAMP '2026-03-01 11:00:00 UTC' "
        "AND client_ts < TIMESTAMP '2026-03-01 12:00:00 UTC'",
    ]


COLUMNS = [
    ("event_id", "varchar"),
    ("user_id", "varchar"),
    ("event_type", "varchar"),
    ("client_ts", "timestamp(6) with time zone"),
    ("server_ts", "timestamp with time zone"),
    ("properties", "varchar"),
]
WINDOW = 'OVER (PARTITION BY e."user_id" ORDER BY e."client_ts", e."event_id")'


def test_ordered_view_exact_text() -> None:
    assert columns_probe_sql(EVENTS) == 'SELECT * FROM "analytics"."events" LIMIT 0'
    utc = (
        "CAST(regexp_replace(CAST(e.\"{0}\" AT TIME ZONE 'UTC' AS varchar), ' [^ ]+$', '') "
        'AS timestamp(6)) AS "{0}"'
    )
    assert ordered_view_statement(EVENTS, COLUMNS) == (
        'CREATE OR REPLACE VIEW "analytics"."events_ordered" AS\n'
        "SELECT\n"
        '    e."event_id",\n'
        '    e."user_id",\n'
        '    e."event_type",\n'
        f"    {utc.format('client_ts')},\n"
        f"    {utc.format('server_ts')},\n"
        '    e."properties",\n'
        f'    row_number() {WINDOW} AS "event_seq",\n'
        f'    lag(e."event_type") {WINDOW} AS "prev_event_type",\n'
        f'    date_diff(\'millisecond\', lag(e."client_ts") {WINDOW}, e."client_ts") '
        'AS "millis_since_prev"\n'
        'FROM "analytics"."events" AS e'
    )
    assert create_view_sql('"a"."v"', "SELECT 1") == 'CREATE OR REPLACE VIEW "a"."v" AS\nSELECT 1'
    with pytest.raises(UsageError, match="lacks the column"):
        ordered_view_select('"a"."b"', COLUMNS[1:])
    with pytest.raises(UsageError, match="already has column"):
        ordered_view_select('"a"."b"', [*COLUMNS, ("event_seq", "bigint")])


def test_funnel_query_is_the_read_api_sql_on_a_pinned_table() -> None:
    request = FunnelRequest(
        steps=("view", "click", "view"),
        window=timedelta(hours=1),
        start=H8,
        end=H8 + timedelta(days=1),
    )
    sql, params = athena_funnel_query(request, EVENTS, snapshot_id=7)
    expected = funnel_sql(
        request.steps,
        request.window,
        '"analytics"."events" FOR VERSION AS OF 7',
        start=request.start,
        end=request.end,
    )
    assert (sql, params) == expected
    assert 'FROM "analytics"."events" FOR VERSION AS OF 7 AS e' in sql
    assert "'view'" not in sql and sql.count("?") == len(params)
    assert execution_parameters(params)[:5] == ["'view'", "'click'", "'view'", "'click'", "'view'"]
    for other in (
        FunnelRequest(steps=("a", "b"), window=timedelta(hours=1), mode="strict"),
        FunnelRequest(steps=("a", "b"), window=timedelta(hours=1), breakdown="platform"),
    ):
        # the full query needs the table's columns; with them, it is the shared query
        with pytest.raises(UsageError, match="window-mode funnels without breakdown"):
            athena_funnel_query(other, EVENTS)
        sql, params = athena_funnel_query(other, EVENTS, snapshot_id=7, columns=("platform",))
        assert (sql, params) == funnel_query(
            other.spec, '"analytics"."events" FOR VERSION AS OF 7', ("platform",)
        )
