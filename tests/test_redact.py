"""Secrets never printed: ``lakehouse.redact`` on every form RELIABILITY.md lists (bug 8)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from lakehouse.cli.main import cli
from lakehouse.redact import redact_text, redact_uri, redact_value

SECRET = "S3cr3t-Value"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        # a password as a URI query parameter (also libpq's sslpassword)
        ("uri", f"postgresql+psycopg2://u@db/x?password={SECRET}"),
        ("uri", f"postgresql+psycopg2://u@db:5432/x?sslmode=require&sslpassword={SECRET}"),
        ("uri", f"postgresql+psycopg2://u@db/x?PassWord={SECRET}&application_name=lake"),
        # a password with no user name
        ("uri", f"postgresql+psycopg2://:{SECRET}@db/x"),
        # a password holding '@' (and ':'), whose tail used to leak
        ("uri", f"postgresql+psycopg2://u:p@ss:{SECRET}@db:5432/x"),
        ("uri", f"postgresql+psycopg2://u:{SECRET}@db/x"),
        ("uri", f"POSTGRESQL://u:{SECRET}@db/x#frag"),
        # Azure
        ("adls.account-key", SECRET),
        ("adls.connection-string", f"DefaultEndpointsProtocol=https;AccountKey={SECRET};"),
        ("adls.sas-token.myaccount", f"sv=2022&sig={SECRET}"),
        ("warehouse", f"abfss://c@acct.dfs.core.windows.net/w?sv=2022&sig={SECRET}"),
        ("notes", f"DefaultEndpointsProtocol=https;AccountName=a;AccountKey={SECRET};x=y"),
        # REST headers and signatures
        ("header.Authorization", f"Bearer {SECRET}"),
        ("header.X-Api-Key", SECRET),
        ("rest.authorization-url", SECRET),
        ("s3.signature", SECRET),
        # the kinds redacted before
        ("s3.secret-access-key", SECRET),
        ("s3.session-token", SECRET),
        ("token", SECRET),
        ("credential", SECRET),
    ],
)
def test_secret_is_redacted(key: str, value: str) -> None:
    shown = redact_value(key, value)
    assert SECRET not in shown
    assert "***" in shown


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("postgresql://u:p@ss@db/x", "postgresql://u:***@db/x"),
        ("postgresql://:pw@db/x", "postgresql://:***@db/x"),
        ("postgresql://u@db/x?password=pw&sslmode=require", "postgresql://u@db/x?password=***&sslmode=require"),
        ("postgresql://u@db/x", "postgresql://u@db/x"),
        ("sqlite:////tmp/my lake %25%23/catalog.db", "sqlite:////tmp/my lake %25%23/catalog.db"),
        ("sqlite:///:memory:", "sqlite:///:memory:"),
        ("file:///srv/lake/warehouse", "file:///srv/lake/warehouse"),
        ("s3://bucket/prefix", "s3://bucket/prefix"),
    ],
)  # fmt: skip
def test_uris_keep_their_shape(uri: str, shown: str) -> None:
    assert redact_uri(uri) == shown
    assert redact_value("uri", uri) == shown


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("type", "sql"),
        ("s3.endpoint", "http://127.0.0.1:9000"),
        ("s3.region", "eu-west-1"),
        ("s3.signer", "S3V4"),
        ("init_catalog_tables", "true"),
        ("warehouse", "/srv/my lake/warehouse"),
    ],
)
def test_plain_settings_are_shown(key: str, value: str) -> None:
    assert redact_value(key, value) == value


def test_uris_inside_text_are_redacted() -> None:
    text = (
        f"cannot open postgresql://u:{SECRET}@h/db?sslpassword={SECRET}: refused; password={SECRET}"
    )
    shown = redact_text(text)
    assert SECRET not in shown and "postgresql://u:***@h/db?sslpassword=***" in shown


def test_config_show_prints_no_secret_of_any_form(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAKEHOUSE_CATALOG", "pg")
    monkeypatch.setenv("PYICEBERG_CATALOG__PG__TYPE", "sql")
    monkeypatch.setenv(
        "PYICEBERG_CATALOG__PG__URI", f"postgresql+psycopg2://:{SECRET}@db/x?sslpassword={SECRET}"
    )
    monkeypatch.setenv("PYICEBERG_CATALOG__PG__WAREHOUSE", "file:///srv/w")
    monkeypatch.setenv("PYICEBERG_CATALOG__PG__ADLS__ACCOUNT_KEY", SECRET)
    monkeypatch.setenv("PYICEBERG_CATALOG__PG__ADLS__CONNECTION_STRING", f"AccountKey={SECRET};")
    monkeypatch.setenv("PYICEBERG_CATALOG__PG__HEADER__AUTHORIZATION", f"Bearer {SECRET}")
    for args in (["config", "show"], ["config", "show", "--json"]):
        result = CliRunner().invoke(cli, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert SECRET not in result.output
    props = json.loads(result.stdout)["catalog_properties"]
    assert props["uri"] == "postgresql+psycopg2://:***@db/x?sslpassword=***"
    assert props["warehouse"] == "file:///srv/w"
