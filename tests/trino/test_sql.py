"""The SQL text the Trino modules build, without a server: quoting, literals, the
optimize statement per planned hour, the retention Trino is given, file kinds."""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pytest

from catalog import open_catalog
from lakehouse.engines.trino.funnel import funnel_query
from lakehouse.engines.trino.optimize import Statement, optimize_sql, statements, threshold_for
from lakehouse.engines.trino.procedures import CLOCK_MARGIN, effective_retention, file_kind
from lakehouse.engines.trino.sql import (
    duration_literal,
    quote_ident,
    size_literal,
    string_literal,
    table_ref,
    timestamp_literal,
)
from lakehouse.engines.trino.views import ordered_sql, ordered_view_name
from lakehouse.errors import UsageError
from lakehouse.funnels import funnel_spec
from lakehouse.settings import Settings, TableName
from lakehouse.tables import ensure_tables
from maintenance.inventory import DataFileInfo
from maintenance.plan import CompactionOptions, CompactionPlan, RewriteGroup


def test_identifiers_and_literals_are_quoted() -> None:
    assert quote_ident('we"ird') == '"we""ird"'
    assert string_literal("it's") == "'it''s'"
    settings = Settings(home=Path("/x"), table=TableName("analytics", "events"))
    assert table_ref(settings) == '"lakehouse"."analytics"."events"'
    assert (
        table_ref(settings, snapshot_id=42)
        == '"lakehouse"."analytics"."events" FOR VERSION AS OF 42'
    )
    assert table_ref(settings, metadata_table="files") == '"lakehouse"."analytics"."events$files"'
    with pytest.raises(UsageError):
        quote_ident("")


def test_typed_literals() -> None:
    paris = timezone(timedelta(hours=2))
    assert timestamp_literal(datetime(2024, 5, 1, 12, 0, 0, 5, tzinfo=paris)) == (
        "TIMESTAMP '2024-05-01 10:00:00.000005 UTC'"
    )
    assert timestamp_literal(datetime(2024, 5, 1)) == "TIMESTAMP '2024-05-01 00:00:00.000000 UTC'"
    assert size_literal(128 * 1024 * 1024) == "'134217728B'"
    assert duration_literal(timedelta(days=5)) == "'432000s'"
    assert duration_literal(timedelta(milliseconds=1)) == "'1s'"  # rounded up: keeps more
    assert duration_literal(timedelta(0)) == "'0s'"
    with pytest.raises(UsageError):
        size_literal(0)
    with pytest.raises(UsageError):
        duration_literal(timedelta(seconds=-1))
    with pytest.raises(UsageError):
        timestamp_literal("2024-05-01")  # type: ignore[arg-type]


def _group(hour: int, sizes: list[int], part: int = 1) -> RewriteGroup:
    blank = {f.name: None for f in fields(DataFileInfo)}  # whatever fields it has today
    files = tuple(
        DataFileInfo(**{**blank, "path": f"f{hour}-{i}", "size": s, "records": 10, "hour": hour})
        for i, s in enumerate(sizes)
    )
    return RewriteGroup(f"h#{part}", hour, part, 2, ("small-files",), files)


def _hour(text: str) -> int:
    return int(
        (datetime.fromisoformat(text) - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() // 3600
    )


def test_optimize_statement_of_a_planned_hour() -> None:
    hour = _hour("2024-05-01T07:00+00:00")
    groups = [_group(hour, [100, 5000]), _group(hour, [70_000_000], part=2)]
    assert threshold_for(groups, 64 * 1024 * 1024) == 70_000_001  # above every planned file
    assert threshold_for(groups[:1], 64 * 1024 * 1024) == 64 * 1024 * 1024
    sql = optimize_sql(
        '"lakehouse"."analytics"."events"', Statement(hour, hour, tuple(groups)), 70_000_001
    )
    assert sql == (
        'ALTER TABLE "lakehouse"."analytics"."events" EXECUTE optimize(file_size_threshold => \'70000001B\')\n'
        "WHERE client_ts >= TIMESTAMP '2024-05-01 07:00:00.000000 UTC' "
        "AND client_ts < TIMESTAMP '2024-05-01 08:00:00.000000 UTC'"
    )


def test_planned_hours_become_statements() -> None:
    h = _hour("2024-05-01T00:00+00:00")
    groups = [
        _group(h, [10, 20]),
        _group(h + 1, [10]),
        _group(h + 1, [30], part=2),  # one hour in two groups: two files
        _group(h + 2, [10, 20]),
        _group(h + 5, [10]),  # a lone file: Trino would leave it
        _group(h + 6, [10, 20]),
    ]
    plan = CompactionPlan("t", 1, datetime.now(UTC), CompactionOptions(), tuple(groups), 7, 0, 0)
    per_hour, lone = statements(plan)
    assert [(s.first, s.last, len(s.groups)) for s in per_hour] == [
        (h, h, 1),
        (h + 1, h + 1, 2),
        (h + 2, h + 2, 1),
        (h + 6, h + 6, 1),
    ]
    assert [g.hour for g in lone] == [h + 5]
    batched, _ = statements(plan, hours_per_statement=2)
    assert [(s.first, s.last) for s in batched] == [(h, h + 1), (h + 2, h + 2), (h + 6, h + 6)]
    assert batched[0].label == "2024-05-01T00..2024-05-01T01"
    assert [(s.first, s.last) for s in statements(plan, 24)[0]] == [(h, h + 2), (h + 6, h + 6)]
    with pytest.raises(UsageError):
        statements(plan, 0)


def test_file_kinds() -> None:
    root = "/w/analytics/events"
    assert file_kind(f"{root}/data/client_ts_hour=2024-05-01-07/a.parquet") == "data"
    assert file_kind(f"{root}/metadata/snap-1-1-abc.avro") == "manifest_list"
    assert file_kind(f"{root}/metadata/abc-m0.avro") == "manifest"
    assert file_kind(f"{root}/metadata/00003-abc.metadata.json") == "metadata"
    assert file_kind(f"{root}/metadata/20240501_abc.stats") == "other"


def test_retention_covers_retain_last(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, table=TableName("a", "events"))
    table = ensure_tables(open_catalog(settings), settings.table)[0].events
    schema = table.schema().as_arrow()
    ts = datetime(2024, 5, 1, tzinfo=UTC)
    for i in range(4):
        row = {f.name: None for f in schema}
        row.update(event_id=f"e{i}", user_id="u", event_type="x", client_ts=ts, server_ts=ts)
        table.append(pa.Table.from_pylist([row], schema=schema))
    snaps = table.snapshots()
    newest = datetime.fromtimestamp(snaps[-1].timestamp_ms / 1000, tz=UTC)
    now = newest + timedelta(days=10)
    assert effective_retention(table, timedelta(days=1), 1, now) == timedelta(days=1)
    third = datetime.fromtimestamp(snaps[-3].timestamp_ms / 1000, tz=UTC)
    assert effective_retention(table, timedelta(days=1), 3, now) == now - third + CLOCK_MARGIN
    assert effective_retention(table, timedelta(days=30), 3, now) == timedelta(days=30)
    with pytest.raises(UsageError):
        effective_retention(table, timedelta(days=1), 0, now)


def test_funnel_query_binds_every_value() -> None:
    spec = funnel_spec(("a", "b'; --", "a"), timedelta(minutes=5), "strict", "properties.page")
    start, end = datetime(2024, 5, 1, tzinfo=UTC), datetime(2024, 5, 2, tzinfo=UTC)
    sql, params = funnel_query(spec, '"t"', ("event_type", "properties"), start=start, end=end)
    assert sql.count("?") == len(params)
    assert "b'; --" not in sql and '"page"' not in sql
    assert params[0] == '$["page"]' and start in params and end in params
    assert params.count(300_000_000) == 2  # one window per level after the first
    with pytest.raises(UsageError, match="cannot break down"):
        funnel_query(funnel_spec(("a",), timedelta(1), breakdown="nope"), '"t"', ("event_type",))


def test_ordered_view_sql_lists_columns() -> None:
    settings = Settings(home=Path("/x"), table=TableName("analytics", "events"))
    assert ordered_view_name(settings) == "events_ordered"
    sql = ordered_sql(settings, ("event_id", 'odd"name'), snapshot_id=7)
    assert sql.startswith(
        'SELECT "event_id", "odd""name", "event_seq", "prev_event_type", "millis_since_prev"'
    )
    assert 'FROM "lakehouse"."analytics"."events" FOR VERSION AS OF 7 AS e' in sql
