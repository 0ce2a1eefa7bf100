"""Catalog mapping for the AWS path, without a server: pyiceberg's Glue catalog -> Trino's
Iceberg Glue catalog, ``s3://`` warehouses -> Trino's native S3 file system (also under
an SQL catalog), secrets kept out of logs and readable by the owner only."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest

from lakehouse.errors import ConfigError
from lakehouse.settings import Settings
from lakehouse.trino_server import ServerOptions, TrinoConfigError, trino_catalog_properties
from lakehouse.trino_server.config import (
    FILESYSTEM_MAPPERS,
    catalog_properties_for,
    s3_filesystem_properties,
    write_config,
)
from lakehouse.trino_server.install import Installation
from lakehouse.trino_server.instance import instance_paths
from lakehouse.trino_server.java import JavaRuntime

JAVA25 = JavaRuntime(Path("/opt/jdk-25"), "25.0.3", 25, "test")
SECRET = "wJalr/XUtnFEMI+K7MDENG-bPxRfiCY"  # looks like a real secret key, is not one
GLUE_SECRET = "glue/S3cr3t+value-123"

MOTO_LIKE = {
    "type": "glue",
    "glue.endpoint": "http://127.0.0.1:5000",
    "glue.region": "eu-west-1",
    "glue.access-key-id": "AKIAGLUE",
    "glue.secret-access-key": GLUE_SECRET,
    "s3.endpoint": "http://127.0.0.1:5000",
    "s3.region": "eu-west-1",
    "s3.access-key-id": "AKIAS3",
    "s3.secret-access-key": SECRET,
    "s3.path-style-access": "true",
    "warehouse": "s3://lake/warehouse",
}


def catalog_env(monkeypatch: pytest.MonkeyPatch, name: str, props: dict[str, str]) -> None:
    for key, value in props.items():
        env_key = key.replace(".", "__").replace("-", "_").upper()
        monkeypatch.setenv(f"PYICEBERG_CATALOG__{name.upper()}__{env_key}", value)


def test_glue_catalog_against_an_emulator_maps_every_property(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog_env(monkeypatch, "glue", MOTO_LIKE)
    props = trino_catalog_properties(Settings.from_env(catalog="glue"))
    assert props == {
        "connector.name": "iceberg",
        "iceberg.catalog.type": "glue",
        "hive.metastore.glue.region": "eu-west-1",
        "hive.metastore.glue.endpoint-url": "http://127.0.0.1:5000",
        "hive.metastore.glue.aws-access-key": "AKIAGLUE",
        "hive.metastore.glue.aws-secret-key": GLUE_SECRET,
        "hive.metastore.glue.skip-archive": "true",
        "hive.metastore.glue.default-warehouse-dir": "s3://lake/warehouse",
        "fs.native-s3.enabled": "true",
        "s3.endpoint": "http://127.0.0.1:5000",
        "s3.region": "eu-west-1",
        "s3.path-style-access": "true",
        "s3.aws-access-key": "AKIAS3",
        "s3.aws-secret-key": SECRET,
        "iceberg.expire-snapshots.min-retention": "0s",
        "iceberg.remove-orphan-files.min-retention": "1d",
    }


def test_glue_on_aws_without_keys_uses_the_default_chain() -> None:
    """A real AWS setup: region only; no key, no endpoint, no path-style in Trino's file."""
    props = catalog_properties_for(
        "prod",
        {"type": "glue", "glue.region": "us-east-2", "warehouse": "s3://prod-lake/warehouse"},
    )
    assert props["iceberg.catalog.type"] == "glue"
    assert props["hive.metastore.glue.region"] == "us-east-2"
    assert props["s3.region"] == "us-east-2"  # the Glue region when S3 has none of its own
    assert props["fs.native-s3.enabled"] == "true"
    for absent in (
        "hive.metastore.glue.endpoint-url",
        "hive.metastore.glue.aws-access-key",
        "hive.metastore.glue.aws-secret-key",
        "s3.endpoint",
        "s3.path-style-access",
        "s3.aws-access-key",
        "s3.aws-secret-key",
    ):
        assert absent not in props, absent


def test_glue_with_nothing_but_the_type_still_maps() -> None:
    """Region, keys and warehouse may all come from the environment (default chain)."""
    props = catalog_properties_for("bare", {"type": "glue"})
    assert props["iceberg.catalog.type"] == "glue"
    assert props["fs.native-s3.enabled"] == "true"  # Glue tables live on S3
    assert "hive.metastore.glue.region" not in props
    assert "hive.metastore.glue.default-warehouse-dir" not in props


def test_client_keys_are_the_fallback_for_glue_and_s3() -> None:
    props = catalog_properties_for(
        "c",
        {
            "type": "glue",
            "client.region": "ap-south-1",
            "client.access-key-id": "AKIACLIENT",
            "client.secret-access-key": SECRET,
            "glue.id": "123456789012",
            "client.role-arn": "arn:aws:iam::123456789012:role/lake-reader",
        },
    )
    assert props["hive.metastore.glue.region"] == props["s3.region"] == "ap-south-1"
    assert props["hive.metastore.glue.aws-access-key"] == props["s3.aws-access-key"] == "AKIACLIENT"
    assert props["hive.metastore.glue.aws-secret-key"] == props["s3.aws-secret-key"] == SECRET
    assert props["hive.metastore.glue.catalogid"] == "123456789012"
    assert props["hive.metastore.glue.iam-role"] == props["s3.iam-role"]


def test_specific_keys_win_over_client_keys() -> None:
    props = catalog_properties_for(
        "c",
        {
            "type": "glue",
            "glue.region": "us-west-2",
            "client.access-key-id": "AKIACLIENT",
            "client.secret-access-key": "client-secret",
            "s3.access-key-id": "AKIAS3",
            "s3.secret-access-key": SECRET,
        },
    )
    assert props["s3.aws-access-key"] == "AKIAS3"
    assert props["hive.metastore.glue.aws-access-key"] == "AKIACLIENT"


@pytest.mark.parametrize(
    ("extra", "path_style"),
    [
        ({"s3.endpoint": "http://127.0.0.1:9000"}, "true"),  # an S3-compatible endpoint
        ({"s3.endpoint": "https://s3.example.com", "s3.force-virtual-addressing": "true"}, None),
        ({"s3.endpoint": "http://minio:9000", "s3.path-style-access": "false"}, None),
        ({"s3.path-style-access": "true"}, "true"),
        ({}, None),
    ],
)
def test_path_style_access(extra: dict[str, str], path_style: str | None) -> None:
    props = s3_filesystem_properties("c", {"s3.region": "us-east-1", **extra})
    assert props.get("s3.path-style-access") == path_style


def test_glue_archive_follows_pyiceberg() -> None:
    base = {"type": "glue", "glue.region": "us-east-1"}
    assert catalog_properties_for("c", base)["hive.metastore.glue.skip-archive"] == "true"
    off = catalog_properties_for("c", {**base, "glue.skip-archive": "false"})
    assert off["hive.metastore.glue.skip-archive"] == "false"


@pytest.mark.parametrize(
    ("props", "message"),
    [
        ({"glue.endpoint": "http://127.0.0.1:5000"}, "GLUE__REGION"),
        ({"glue.region": "us-east-1", "glue.access-key-id": "AKIA"}, "glue.secret-access-key"),
        (
            {"glue.region": "us-east-1", "s3.secret-access-key": SECRET},
            "s3.access-key-id is missing",
        ),
        ({"glue.region": "us-east-1", "warehouse": "gs://bucket/wh"}, "s3://"),
    ],
)
def test_incomplete_glue_settings_are_config_errors(
    home: Path, monkeypatch: pytest.MonkeyPatch, props: dict[str, str], message: str
) -> None:
    catalog_env(monkeypatch, "odd", {"type": "glue", **props})
    with pytest.raises(TrinoConfigError, match=message) as info:
        trino_catalog_properties(Settings.from_env(catalog="odd"))
    assert isinstance(info.value, ConfigError)
    assert SECRET not in str(info.value)


def test_a_session_token_leaves_the_keys_to_the_default_chain(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Trino takes no session token in a catalog file: temporary keys would be refused."""
    with caplog.at_level(logging.DEBUG, logger="lakehouse.trino_server"):
        props = catalog_properties_for(
            "tmp",
            {
                "type": "glue",
                "glue.region": "us-east-1",
                "glue.access-key-id": "ASIATEMP",
                "glue.secret-access-key": GLUE_SECRET,
                "glue.session-token": "token-value",
                "s3.access-key-id": "ASIATEMP",
                "s3.secret-access-key": SECRET,
                "s3.session-token": "token-value",
            },
        )
    assert not any("aws-access-key" in k or "aws-secret-key" in k for k in props)
    assert "default AWS credential chain" in caplog.text
    for secret in (SECRET, GLUE_SECRET, "token-value"):
        assert secret not in caplog.text


def test_embedded_catalog_on_an_s3_warehouse(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The embedded SQLite catalog with PYICEBERG_CATALOG__LAKEHOUSE__WAREHOUSE=s3://...
    (what ``open_catalog`` honours) -> the JDBC catalog plus the native S3 file system."""
    s3 = {k: v for k, v in MOTO_LIKE.items() if k.startswith("s3.")}
    catalog_env(monkeypatch, "lakehouse", {**s3, "warehouse": "s3://lake/embedded"})
    props = trino_catalog_properties(Settings.from_env())
    assert props["iceberg.catalog.type"] == "jdbc"
    assert props["iceberg.jdbc-catalog.driver-class"] == "org.sqlite.JDBC"
    assert props["iceberg.jdbc-catalog.connection-url"] == (
        f"jdbc:sqlite:{home.resolve() / 'catalog.db'}"
    )
    assert props["iceberg.jdbc-catalog.default-warehouse-dir"] == "s3://lake/embedded"
    assert props["fs.native-s3.enabled"] == "true"
    assert props["s3.endpoint"] == "http://127.0.0.1:5000"
    assert props["s3.path-style-access"] == "true"
    assert props["s3.aws-secret-key"] == SECRET
    assert "fs.native-local.enabled" not in props


def test_sql_catalog_on_postgres_with_an_s3_warehouse() -> None:
    props = catalog_properties_for(
        "pg",
        {
            "type": "sql",
            "uri": "postgresql://lake@db:5432/lake",
            "warehouse": "s3a://lake/wh",
            "s3.region": "us-east-1",
        },
    )
    assert props["iceberg.jdbc-catalog.default-warehouse-dir"] == "s3a://lake/wh"
    assert props["fs.native-s3.enabled"] == "true"
    assert "s3.aws-access-key" not in props  # the default chain
    assert set(FILESYSTEM_MAPPERS) >= {"file", "s3", "s3a", "s3n"}


def test_catalog_file_holding_keys_is_private_and_nothing_logs_them(
    home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    catalog_env(monkeypatch, "glue", MOTO_LIKE)
    settings = Settings.from_env(catalog="glue")
    paths = instance_paths(settings, 8123)
    with caplog.at_level(logging.DEBUG):
        write_config(
            paths,
            settings=settings,
            installation=Installation(tmp_path / "cache", "476"),
            java=JAVA25,
            options=ServerOptions(port=8123),
            node_id="n1",
        )
    catalog_file = paths.catalog_dir / "lakehouse.properties"
    text = catalog_file.read_text()
    assert "hive.metastore.glue.aws-secret-key=glue/S3cr3t+value-123" in text
    assert f"s3.aws-secret-key={SECRET}" in text
    assert stat.S_IMODE(catalog_file.stat().st_mode) == 0o600
    for other in (paths.config_file, paths.jvm_config, paths.log_properties):
        assert SECRET not in other.read_text() and GLUE_SECRET not in other.read_text()
    assert SECRET not in caplog.text and GLUE_SECRET not in caplog.text
