"""Trino on a PostgreSQL pyiceberg catalog: a second server (its own port and home) whose
``lakehouse`` catalog is the pyiceberg catalog ``pg``, also served as extra catalog ``pg``.
The same reads as on the embedded catalog (pinned counts, the ordered view, a funnel
checked by chdb) and a Trino-run compaction."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from catalog import open_catalog
from lakehouse.engines.trino.funnel import run_trino
from lakehouse.engines.trino.maintenance import run_maintenance_with_trino
from lakehouse.engines.trino.views import create_views
from lakehouse.funnels import FunnelRequest, run_funnel
from lakehouse.read import events, ordered
from lakehouse.settings import Settings, TableName
from lakehouse.trino_server import query, trino_catalog_properties
from maintenance import CompactionOptions, MaintenanceOptions
from tests.conftest import postgres_catalog_env
from tests.support.components import free_port
from tests.support.postgres import PostgresServer
from tests.trino.conftest import (
    TrinoPool,
    TrinoServer,
    Written,
    installed_trino,
    populate,
    written_and_compacted,
)
from tests.trino.generate import chdb_users, fragment, table_rows

pytestmark = [pytest.mark.trino, pytest.mark.postgres]


@pytest.fixture(scope="module")
def pg_trino(
    postgres_server: PostgresServer,
    tmp_path_factory: pytest.TempPathFactory,
    trino_pool: TrinoPool,
) -> Iterator[TrinoServer]:
    """A server whose ``lakehouse`` catalog is the PostgreSQL catalog ``pg`` (also served
    as ``pg``); the pool stops the embedded-catalog server first."""
    installation, java = installed_trino()
    home: Path = tmp_path_factory.mktemp("trino-pg")
    with pytest.MonkeyPatch.context() as mp:
        name = postgres_catalog_env(postgres_server, home, mp)
        settings = Settings(home=home, catalog=name, table=TableName("analytics", "events"))
        snapshot_id, first_ids = populate(settings, (50, 30))
        server = TrinoServer(
            settings, free_port(), snapshot_id, first_ids, java, installation, 0.0, {}, (name,)
        )
        yield trino_pool.ensure(server)


def test_catalog_maps_to_the_postgres_database(pg_trino: TrinoServer) -> None:
    props = trino_catalog_properties(pg_trino.settings)
    assert props["iceberg.jdbc-catalog.connection-url"].startswith("jdbc:postgresql://127.0.0.1:")
    assert props["iceberg.jdbc-catalog.catalog-name"] == "pg"
    assert props["iceberg.jdbc-catalog.driver-class"] == "org.postgresql.Driver"


def test_both_catalog_names_read_the_rows_pyiceberg_wrote(pg_trino: TrinoServer) -> None:
    expected = sorted(
        open_catalog(pg_trino.settings)
        .load_table(("analytics", "events"))
        .scan()
        .to_arrow()["event_id"]
        .to_pylist()
    )
    assert len(expected) == 80
    for catalog in ("lakehouse", "pg"):
        rows = query(
            f"SELECT event_id FROM {catalog}.analytics.events ORDER BY event_id",
            settings=pg_trino.settings,
            port=pg_trino.port,
        ).rows
        assert [r[0] for r in rows] == expected
    old = query(
        f"SELECT count(*) FROM events FOR VERSION AS OF {pg_trino.first_snapshot_id}",
        settings=pg_trino.settings,
        port=pg_trino.port,
    ).rows
    assert old == ((50,),)


def test_views_work_on_the_postgres_catalog(pg_trino: TrinoServer) -> None:
    run = lambda sql: query(sql, settings=pg_trino.settings, port=pg_trino.port).rows  # noqa: E731
    run(
        "CREATE OR REPLACE VIEW analytics.by_type AS SELECT event_type, count(*) AS n FROM events GROUP BY 1"
    )
    try:
        assert sum(n for _, n in run("SELECT event_type, n FROM pg.analytics.by_type")) == 80
    finally:
        run("DROP VIEW analytics.by_type")
    assert ("analytics", "by_type") not in open_catalog(pg_trino.settings).list_tables("analytics")


@pytest.fixture(scope="module")
def pg_generated(pg_trino: TrinoServer) -> Written:
    """Generated deliveries written by the real writer into the PostgreSQL catalog, plus
    another producer's raw append, compacted by the Python maintenance."""
    return written_and_compacted(
        pg_trino.on_table("analytics", "gen"), pg_trino.port, seed=21, events=3000
    )


def test_pinned_counts_equal_polars_on_postgres(pg_generated: Written) -> None:
    w = pg_generated
    for snap in (w.first_snapshot, w.written_snapshot, w.compacted_snapshot):
        [(n, distinct, users)] = query(
            "SELECT count(*), count(DISTINCT event_id), count(DISTINCT user_id) "
            f"FROM gen FOR VERSION AS OF {snap}",
            settings=w.settings,
            port=w.port,
        ).rows
        frame = events(w.settings, snapshot_id=snap).collect()
        assert (n, distinct, users) == (
            frame.height,
            frame["event_id"].n_unique(),
            frame["user_id"].n_unique(),
        )
    assert n == w.unique_events


def test_ordered_view_and_funnel_on_postgres(pg_generated: Written) -> None:
    w = pg_generated
    create_views(w.settings, port=w.port)
    rows = query(
        "SELECT * FROM gen_ordered ORDER BY user_id, event_seq", settings=w.settings, port=w.port
    ).rows
    assert [tuple(r) for r in rows] == list(ordered(w.settings).collect().iter_rows())
    steps = ("app_open", "view_product", "add_to_cart")
    request = FunnelRequest(steps, timedelta(hours=1))
    trino = [s.users for s in run_trino(w.settings, request, port=w.port).steps]
    assert trino == [s.users for s in run_funnel(w.settings, request).steps]
    assert trino == chdb_users(events(w.settings).collect(), steps, timedelta(hours=1))
    assert trino[1] > 0


def test_trino_maintenance_on_postgres(pg_trino: TrinoServer) -> None:
    settings = pg_trino.on_table("maint", "events")
    rows = fragment(settings, seed=9, chunks=6)
    options = MaintenanceOptions(
        compaction=CompactionOptions(target_file_size=16 * 1024 * 1024),
        jobs=("compaction", "expiry"),
        snapshot_retention=timedelta(0),
    )
    result = run_maintenance_with_trino(settings, options, port=pg_trino.port)
    assert result.ok and result.compaction is not None and result.expiry is not None
    assert result.compaction.replace_commits >= 8 and result.compaction.files_rewritten > 8
    # Iceberg's incremental cleanup (Trino) deletes the files an *expired* snapshot removed:
    # those the current snapshot (the last optimize) replaced wait for the next expiry.
    current = open_catalog(settings).load_table(settings.table.identifier).current_snapshot()
    assert current is not None and current.summary is not None
    waiting = int(current.summary["deleted-data-files"])
    assert waiting > 0
    assert result.expiry.data_files_deleted == result.compaction.files_rewritten - waiting
    assert Counter(table_rows(settings)) == rows
