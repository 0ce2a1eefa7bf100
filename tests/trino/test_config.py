"""Catalog mapping and server files, without a server."""

from __future__ import annotations

import stat
from datetime import timedelta
from pathlib import Path

import pytest

from lakehouse.errors import ConfigError
from lakehouse.settings import Settings
from lakehouse.trino_server import ServerOptions, TrinoConfigError, trino_catalog_properties
from lakehouse.trino_server.config import (
    CATALOG_MAPPERS,
    all_catalogs,
    jvm_options,
    render_properties,
    server_properties,
    write_config,
)
from lakehouse.trino_server.install import Installation
from lakehouse.trino_server.instance import InstancePaths, instance_paths
from lakehouse.trino_server.java import JavaRuntime

JAVA25 = JavaRuntime(Path("/opt/jdk-25"), "25.0.3", 25, "test")


def pg_env(monkeypatch: pytest.MonkeyPatch, name: str, uri: str, warehouse: str | None) -> None:
    monkeypatch.setenv(f"PYICEBERG_CATALOG__{name.upper()}__TYPE", "sql")
    monkeypatch.setenv(f"PYICEBERG_CATALOG__{name.upper()}__URI", uri)
    if warehouse:
        monkeypatch.setenv(f"PYICEBERG_CATALOG__{name.upper()}__WAREHOUSE", warehouse)


def test_embedded_catalog_maps_to_the_sqlite_jdbc_catalog(home: Path) -> None:
    props = trino_catalog_properties(Settings.from_env())
    absolute = home.resolve()
    assert props == {
        "connector.name": "iceberg",
        "iceberg.catalog.type": "jdbc",
        "iceberg.jdbc-catalog.driver-class": "org.sqlite.JDBC",
        "iceberg.jdbc-catalog.connection-url": f"jdbc:sqlite:{absolute / 'catalog.db'}",
        "iceberg.jdbc-catalog.catalog-name": "lakehouse",
        "iceberg.jdbc-catalog.default-warehouse-dir": f"file://{absolute / 'warehouse'}",
        "iceberg.jdbc-catalog.schema-version": "V1",
        "fs.native-local.enabled": "true",
        "local.location": "/",
        "iceberg.expire-snapshots.min-retention": "0s",
        "iceberg.remove-orphan-files.min-retention": "1d",
    }


def test_postgres_catalog_maps_url_user_password_and_name(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pg_env(
        monkeypatch,
        "pgwh",
        "postgresql+psycopg2://lake%40user:p%3Ass%2Fw@db.internal:5433/lake?sslmode=require",
        "file:///srv/warehouse",
    )
    props = trino_catalog_properties(Settings.from_env(catalog="pgwh"), min_retention="7d")
    assert props["iceberg.jdbc-catalog.connection-url"] == (
        "jdbc:postgresql://db.internal:5433/lake?sslmode=require"
    )
    assert props["iceberg.jdbc-catalog.driver-class"] == "org.postgresql.Driver"
    assert props["iceberg.jdbc-catalog.connection-user"] == "lake@user"
    assert props["iceberg.jdbc-catalog.connection-password"] == "p:ss/w"
    assert props["iceberg.jdbc-catalog.catalog-name"] == "pgwh"
    assert props["iceberg.jdbc-catalog.default-warehouse-dir"] == "file:///srv/warehouse"
    assert props["iceberg.expire-snapshots.min-retention"] == "7d"


def test_postgres_defaults_and_inferred_type(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYICEBERG_CATALOG__PG2__URI", "postgresql://lake@localhost/events")
    monkeypatch.setenv("PYICEBERG_CATALOG__PG2__WAREHOUSE", "/srv/wh")
    props = trino_catalog_properties(Settings.from_env(catalog="pg2"))
    assert props["iceberg.jdbc-catalog.connection-url"] == "jdbc:postgresql://localhost:5432/events"
    assert "iceberg.jdbc-catalog.connection-password" not in props
    assert props["iceberg.jdbc-catalog.default-warehouse-dir"] == "file:///srv/wh"


def test_catalog_config_is_read_when_called_not_at_import(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(TrinoConfigError, match="PYICEBERG_CATALOG__LATE__URI"):
        trino_catalog_properties(Settings.from_env(catalog="late"))
    pg_env(monkeypatch, "late", f"sqlite:///{home}/other.db", (home / "wh").as_uri())
    props = trino_catalog_properties(Settings.from_env(catalog="late"))
    assert props["iceberg.jdbc-catalog.connection-url"] == f"jdbc:sqlite:{home.resolve()}/other.db"
    assert props["iceberg.jdbc-catalog.catalog-name"] == "late"


@pytest.mark.parametrize(
    ("props", "message"),
    [
        ({"type": "rest", "uri": "http://127.0.0.1:8181"}, "type 'rest'.*supported: glue, sql"),
        ({"type": "sql", "uri": "sqlite:///:memory:", "warehouse": "file:///w"}, "in-memory"),
        ({"type": "sql", "uri": "mysql://u@h/db", "warehouse": "file:///w"}, "mysql"),
        ({"type": "sql", "uri": "sqlite:////tmp/c.db"}, "PYICEBERG_CATALOG__ODD__WAREHOUSE"),
        ({"type": "sql", "uri": "sqlite:////tmp/c.db", "warehouse": "gs://bucket/wh"}, "s3://"),
        ({"type": "sql"}, "PYICEBERG_CATALOG__ODD__URI"),
    ],
)
def test_unsupported_catalogs_are_config_errors(
    home: Path, monkeypatch: pytest.MonkeyPatch, props: dict[str, str], message: str
) -> None:
    for key, value in props.items():
        monkeypatch.setenv(f"PYICEBERG_CATALOG__ODD__{key.upper()}", value)
    with pytest.raises(TrinoConfigError, match=message) as info:
        trino_catalog_properties(Settings.from_env(catalog="odd"))
    assert isinstance(info.value, ConfigError)


def test_a_new_catalog_type_plugs_in(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYICEBERG_CATALOG__FAKE__TYPE", "fake")
    monkeypatch.setitem(
        CATALOG_MAPPERS, "fake", lambda name, props: {"iceberg.catalog.type": f"fake-{name}"}
    )
    props = trino_catalog_properties(Settings.from_env(catalog="fake"))
    assert props["iceberg.catalog.type"] == "fake-fake"
    assert props["connector.name"] == "iceberg"


def test_extra_catalogs_are_served_under_their_own_names(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pg_env(monkeypatch, "pg", "postgresql://u@127.0.0.1:5432/db", "file:///wh")
    catalogs = all_catalogs(Settings.from_env(), ServerOptions(extra_catalogs=("pg",)))
    assert sorted(catalogs) == ["lakehouse", "pg"]
    assert catalogs["lakehouse"]["iceberg.jdbc-catalog.catalog-name"] == "lakehouse"
    assert catalogs["pg"]["iceberg.jdbc-catalog.catalog-name"] == "pg"


def test_server_listens_on_loopback_and_is_sized_for_two_cores(tmp_path: Path) -> None:
    paths = InstancePaths(tmp_path / "trino" / "8123")
    installation = Installation(tmp_path / "cache", "476")
    props = server_properties(paths, installation, ServerOptions(port=8123), node_id="n1")
    assert props["node.bind-ip"] == "127.0.0.1"
    assert props["http-server.http.port"] == "8123"
    assert props["discovery.uri"] == "http://127.0.0.1:8123"
    assert props["query.max-memory-per-node"] == "2GB"
    assert props["plugin.dir"] == str(tmp_path / "cache" / "server" / "plugin")
    assert props["catalog.config-dir"] == str(paths.catalog_dir)
    flags = jvm_options(JAVA25, ServerOptions())
    for flag in (
        "-Xmx6G",
        "--add-modules=jdk.incubator.vector",
        "--sun-misc-unsafe-memory-access=allow",
        "--enable-native-access=ALL-UNNAMED",
        "-XX:+EnableDynamicAgentLoading",
    ):
        assert flag in flags


def test_server_options_from_env_and_validation() -> None:
    options = ServerOptions.from_env(
        {
            "LAKEHOUSE_TRINO_PORT": "9099",
            "LAKEHOUSE_TRINO_HEAP": "2G",
            "LAKEHOUSE_TRINO_MIN_RETENTION": "7d",
            "LAKEHOUSE_TRINO_ORPHAN_MIN_RETENTION": "0s",
        },
        extra_catalogs=["pg"],
    )
    assert (options.port, options.heap, options.min_retention) == (9099, "2G", timedelta(days=7))
    assert options.orphan_min_retention == timedelta(0)
    assert ServerOptions().orphan_min_retention == timedelta(days=1)
    assert options.query_max_memory_per_node == "716MB"
    assert options.extra_catalogs == ("pg",)
    assert ServerOptions.from_env({}, port=8081).port == 8081
    with pytest.raises(TrinoConfigError, match="LAKEHOUSE_TRINO_HEAP"):
        ServerOptions(heap="lots")
    with pytest.raises(TrinoConfigError, match="lowercase"):
        ServerOptions(extra_catalogs=("Bad-Name",))
    with pytest.raises(TrinoConfigError, match="LAKEHOUSE_TRINO_"):
        ServerOptions.from_env({"LAKEHOUSE_TRINO_PORT": "eighty"})


def test_properties_are_escaped() -> None:
    text = render_properties({"a": "C:\\dir", "b": "two\nlines", "c": " lead"}, "hdr")
    assert text.splitlines() == ["# hdr", "a=C:\\\\dir", "b=two\\nlines", "c=\\ lead"]


def test_write_config_writes_private_catalog_files(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pg_env(monkeypatch, "pg", "postgresql://u:secret@127.0.0.1/db", "file:///wh")
    settings = Settings.from_env(catalog="pg")
    paths = instance_paths(settings, 8124)
    (paths.catalog_dir).mkdir(parents=True)
    (paths.catalog_dir / "stale.properties").write_text("connector.name=memory\n")
    written = write_config(
        paths,
        settings=settings,
        installation=Installation(home / "cache", "476"),
        java=JAVA25,
        options=ServerOptions(port=8124),
        node_id="lakehouse-8124-x",
    )
    assert sorted(p.name for p in paths.catalog_dir.iterdir()) == ["lakehouse.properties"]
    catalog_file = paths.catalog_dir / "lakehouse.properties"
    assert "iceberg.jdbc-catalog.connection-password=secret" in catalog_file.read_text()
    assert stat.S_IMODE(catalog_file.stat().st_mode) == 0o600
    assert written["lakehouse"]["iceberg.jdbc-catalog.connection-user"] == "u"
    assert "node.id=lakehouse-8124-x" in paths.config_file.read_text()
    assert "-Xmx6G" in paths.jvm_config.read_text().splitlines()
    assert paths.root == home.resolve() / "trino" / "8124"


def test_client_connects_to_loopback_with_the_settings_schema(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lakehouse.settings import TableName
    from lakehouse.trino_server import connect

    monkeypatch.setenv("LAKEHOUSE_TRINO_PORT", "9123")
    conn = connect(Settings.from_env().with_table(TableName("sales", "events")))
    assert (conn.host, conn.port, conn.user) == ("127.0.0.1", 9123, "lakehouse")
    assert (conn.catalog, conn.schema) == ("lakehouse", "sales")
    assert connect(Settings.from_env(), 9124).port == 9124
