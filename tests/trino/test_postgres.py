"""Trino on a PostgreSQL pyiceberg catalog: a second server (its own port and home) whose
``lakehouse`` catalog is the pyiceberg catalog ``pg``, also served as extra catalog ``pg``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from catalog import open_catalog
from lakehouse.settings import Settings, TableName
from lakehouse.trino import query, trino_catalog_properties
from tests.conftest import postgres_catalog_env
from tests.support.components import free_port
from tests.support.postgres import PostgresServer
from tests.trino.conftest import TrinoPool, TrinoServer, installed_trino, populate

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
