"""Trino and Polars read the same rows: a table written by the real writer (on-time and
late commits, resends, schema evolution, ties in client time), partly by another producer,
then compacted by the Python maintenance. Counts, the ordered view and pinned reads agree
at every snapshot."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import polars as pl
import pytest
from click.testing import CliRunner
from pyiceberg.types import StringType

from catalog import open_catalog
from lakehouse.cli.main import cli
from lakehouse.engines.trino.views import (
    create_views,
    ordered_sql,
    ordered_view_name,
    table_columns,
)
from lakehouse.read import events, ordered
from lakehouse.tables import ensure_tables
from lakehouse.trino_server import connect, query
from tests.trino.conftest import Written
from tests.trino.generate import deliveries, generate_events, write_deliveries

pytestmark = pytest.mark.trino


def q(w: Written, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    return list(query(sql, params, settings=w.settings, port=w.port).rows)


@pytest.fixture
def written(generated: Written) -> Written:
    return generated


def test_the_table_is_what_production_makes(written: Written) -> None:
    assert written.late_commits > 0 and written.compacted_files > 0
    [(n, distinct)] = q(written, "SELECT count(*), count(DISTINCT event_id) FROM gen")
    assert n == distinct == written.unique_events


@pytest.mark.parametrize("which", ["first", "written", "compacted", "current"])
def test_pinned_counts_equal_polars(written: Written, which: str) -> None:
    snap = {
        "first": written.first_snapshot,
        "written": written.written_snapshot,
        "compacted": written.compacted_snapshot,
        "current": None,
    }[which]
    version = f" FOR VERSION AS OF {snap}" if snap is not None else ""
    rows = q(
        written,
        "SELECT date_trunc('hour', client_ts) AS h, count(*), count(DISTINCT event_id), "
        f"count(DISTINCT user_id) FROM gen{version} GROUP BY 1",
    )
    trino = {h: (n, d, u) for h, n, d, u in rows}
    frame = (
        events(written.settings, snapshot_id=snap)
        .group_by(pl.col("client_ts").dt.truncate("1h").alias("h"))
        .agg(pl.len(), pl.col("event_id").n_unique(), pl.col("user_id").n_unique())
        .collect()
    )
    polars = {h: (n, d, u) for h, n, d, u in frame.iter_rows()}
    assert trino == polars
    total = sum(v[0] for v in trino.values())
    if which == "first":
        assert 0 < total < written.unique_events
    else:
        assert total == written.unique_events and len(trino) >= 10


def _ties(frame: pl.DataFrame) -> pl.DataFrame:
    """Rows whose user has another event at exactly the same client time."""
    return frame.filter(pl.len().over("user_id", "client_ts") > 1)


def test_ordered_view_rows_equal_the_read_api(written: Written) -> None:
    [view] = create_views(written.settings, port=written.port)
    assert view.view == "lakehouse.analytics.gen_ordered"
    result = query(
        f"SELECT * FROM {ordered_view_name(written.settings)} ORDER BY user_id, event_seq",
        settings=written.settings,
        port=written.port,
    )
    expected = ordered(written.settings).collect()
    assert list(result.columns) == expected.columns == list(view.columns)
    assert [tuple(r) for r in result.rows] == list(expected.iter_rows())
    ties = _ties(expected)
    assert ties.height > 20  # the tie-break by event_id is exercised...
    pairs = ties.sort("user_id", "event_seq").group_by("user_id", "client_ts", maintain_order=True)
    for _, group in pairs:
        assert group["event_id"].to_list() == sorted(group["event_id"].to_list())  # ...and holds
    assert set(expected["millis_since_prev"].drop_nulls().to_list()) >= {0}


def test_pinned_ordered_rows_equal_the_read_api(written: Written) -> None:
    conn = connect(written.settings, written.port)
    try:
        columns = table_columns(written.settings, conn)
    finally:
        conn.close()
    for snap in (written.first_snapshot, written.written_snapshot):
        sql = ordered_sql(written.settings, columns, snapshot_id=snap)
        rows = q(written, sql + "\nORDER BY user_id, event_seq")
        expected = ordered(written.settings, snapshot_id=snap).collect()
        assert [tuple(r) for r in rows] == list(expected.iter_rows())
        assert len(rows) == expected.height > 0


def test_the_view_outlives_a_new_column_and_views_brings_it_in(written: Written) -> None:
    settings = written.settings.with_table(written.settings.table.sibling("_evolving"))
    table = ensure_tables(open_catalog(settings), settings.table)[0].events
    generated = generate_events(3, users=5, events=60, hours=2)
    write_deliveries(settings, deliveries(generated, every=timedelta(hours=4)))
    runner = CliRunner()
    args = ["trino", "views", "--home", str(settings.home), "--table", str(settings.table)]
    first = runner.invoke(cli, [*args, "--port", str(written.port), "--json"])
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["views"][0]["existed"] is False
    with table.refresh().update_schema() as update:
        update.add_column("campaign", StringType())
    view = ordered_view_name(settings)
    [(n,)] = query(f"SELECT count(*) FROM {view}", settings=settings, port=written.port).rows
    assert n == 60  # still answers, with the columns it had
    again = runner.invoke(cli, [*args, "--port", str(written.port)])
    assert again.exit_code == 0, again.output
    assert "replaced view" in again.stdout and "new columns: campaign" in again.stdout
    columns = query(f"SELECT * FROM {view} LIMIT 1", settings=settings, port=written.port).columns
    assert "campaign" in columns and columns[-3:] == (
        "event_seq",
        "prev_event_type",
        "millis_since_prev",
    )


def test_views_without_a_server_is_a_clear_error(written: Written) -> None:
    from tests.support.components import free_port

    out = CliRunner().invoke(
        cli, ["trino", "views", "--home", str(written.settings.home), "--port", str(free_port())]
    )
    assert out.exit_code == 1
    assert "lakehouse trino start" in out.output


def test_hours_moved_by_compaction_read_the_same(written: Written) -> None:
    before = q(
        written,
        f"SELECT event_id, user_id, event_type, client_ts, server_ts FROM gen "
        f"FOR VERSION AS OF {written.written_snapshot} ORDER BY event_id",
    )
    after = q(
        written,
        "SELECT event_id, user_id, event_type, client_ts, server_ts FROM gen ORDER BY event_id",
    )
    assert before == after and len(after) == written.unique_events
    table = open_catalog(written.settings).load_table(written.settings.table.identifier)
    files_before = table.inspect.files(snapshot_id=written.written_snapshot).num_rows
    [(files_after,)] = q(written, 'SELECT count(*) FROM "gen$files"')
    assert files_after == table.inspect.files().num_rows < files_before
