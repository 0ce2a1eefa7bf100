"""Catalog passwords of every form stay hidden: ``/ # ? @ :``, spaces and percent-escapes,
in ``config show``, in "catalog unreachable" errors, in ``-vv`` logs and in what a write
leaves in the table (snapshot summaries, table properties).

Every password carries the marker ``Zq``, which appears nowhere else: a shown text that
holds ``Zq`` leaked some part of a password.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote

import pytest
from click.testing import CliRunner
from sqlalchemy.engine import make_url

from catalog import open_catalog
from lakehouse.cli.main import cli
from lakehouse.errors import CatalogUnavailable
from lakehouse.redact import redact_text, redact_uri, redact_value
from lakehouse.settings import Settings
from tests.support.postgres import PostgresServer

MARK = "Zq"
PASSWORDS = [
    "Zq/Zq#Zq?Zq",  # p/ss#w?rd: SQLAlchemy takes all of it, urllib would stop at '/'
    "Zq:Zq/Zq",
    "Zq%2FZq%23Zq%3FZq%40Zq%3AZq",  # percent-escaped / # ? @ :
    "Zq?sslmode=require&Zq",
    "Zq Zq",
    "Zq@Zq:Zq/Zq",  # an unescaped '@' (SQLAlchemy splits at the first one)
    "Zq@",
    "@Zq",
]
NO_AT = [p for p in PASSWORDS if "@" not in p]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port  # closed again: nothing listens there


@pytest.mark.parametrize("password", PASSWORDS)
@pytest.mark.parametrize(
    ("template", "shown"),
    [
        (
            "postgresql+psycopg2://lake:{pw}@db.example:5432/lake?sslmode=require",
            "postgresql+psycopg2://lake:***@db.example:5432/lake?sslmode=require",
        ),
        ("postgresql://:{pw}@db/x", "postgresql://:***@db/x"),
        ("mysql+pymysql://lake:{pw}@db/x#y", "mysql+pymysql://lake:***@db/x#y"),
        (
            "https://lake:{pw}@rest.example/v1/catalog?warehouse=w",
            "https://lake:***@rest.example/v1/catalog?warehouse=w",
        ),
    ],
)
def test_a_password_in_the_user_info_is_masked_whole(
    password: str, template: str, shown: str
) -> None:
    uri = template.format(pw=password)
    assert redact_uri(uri) == shown
    assert redact_value("uri", uri) == shown
    assert MARK not in redact_text(f"cannot connect to {uri}: refused ('{uri}')")


@pytest.mark.parametrize("password", NO_AT)
def test_the_masked_text_is_what_sqlalchemy_reads_as_the_password(password: str) -> None:
    """The oracle: SQLAlchemy's own parser takes exactly this text as the password."""
    uri = f"postgresql+psycopg2://lake:{password}@db.example:5432/lake?sslmode=require"
    url = make_url(uri)
    assert url.password == unquote(password)
    assert (url.host, url.port, url.database) == ("db.example", 5432, "lake")


@pytest.mark.parametrize("password", [p for p in PASSWORDS if "&" not in p and " " not in p])
def test_a_password_in_the_query_is_masked_whole(password: str) -> None:
    uri = f"postgresql+psycopg2://lake@db/x?sslpassword={password}&sslmode=require"
    assert make_url(uri).query["sslpassword"] == unquote(password)  # SQLAlchemy's reading
    assert redact_uri(uri) == "postgresql+psycopg2://lake@db/x?sslpassword=***&sslmode=require"
    # after a '#', a parameter is still read (an OAuth fragment, say)
    shown = redact_uri(f"https://rest.example/cb?state=1#access_token={password}")
    assert shown == "https://rest.example/cb?state=1#access_token=***"


@pytest.mark.parametrize(
    "uri",
    [
        "s3://bucket/events/a:b@c/part-0.parquet",
        "file:///srv/lake/user@host/warehouse",
        "sqlite:////tmp/a:b@c/catalog.db",
        "postgresql+psycopg2://lake@db/x?application_name=a@b",
        "https://rest.example/v1/catalog?warehouse=s3://b/w",
    ],
)
def test_uris_without_a_password_keep_their_shape(uri: str) -> None:
    assert redact_uri(uri) == uri
    assert redact_text(f"at {uri}: fine") == f"at {uri}: fine"


def test_an_at_sign_after_a_port_is_read_as_sqlalchemy_reads_it() -> None:
    """SQLAlchemy reads ``u@db:5432/x?app=a@b`` as user ``u@db``, password
    ``5432/x?app=a``, host ``b``: what it would send as a password is masked."""
    uri = "postgresql+psycopg2://lake@db:5432/x?application_name=a@b"
    assert make_url(uri).password == "5432/x?application_name=a"
    assert redact_uri(uri) == "postgresql+psycopg2://lake@db:***@b"


def _pg_env(monkeypatch: pytest.MonkeyPatch, uri: str, home: Path) -> None:
    monkeypatch.setenv("LAKEHOUSE_CATALOG", "pg")
    monkeypatch.setenv("PYICEBERG_CATALOG__PG__TYPE", "sql")
    monkeypatch.setenv("PYICEBERG_CATALOG__PG__URI", uri)
    monkeypatch.setenv("PYICEBERG_CATALOG__PG__WAREHOUSE", (home / "w").as_uri())


@pytest.mark.parametrize("password", PASSWORDS)
def test_config_show_hides_every_password_form(
    password: str, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _pg_env(monkeypatch, f"postgresql+psycopg2://lake:{password}@db:5432/x", home)
    for args in (["config", "show"], ["config", "show", "--json"]):
        result = CliRunner().invoke(cli, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert MARK not in result.output
    props = json.loads(result.stdout)["catalog_properties"]
    assert props["uri"] == "postgresql+psycopg2://lake:***@db:5432/x"


@pytest.mark.parametrize("password", NO_AT)
def test_an_unreachable_catalog_error_hides_every_password_form(
    password: str, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = _free_port()
    _pg_env(monkeypatch, f"postgresql+psycopg2://lake:{password}@127.0.0.1:{port}/db", home)
    with pytest.raises(CatalogUnavailable) as caught:
        open_catalog(Settings.from_env())
    message = str(caught.value)
    assert f"postgresql+psycopg2://lake:***@127.0.0.1:{port}/db" in message
    assert MARK not in message
    for args in (["init"], ["health", "--json"]):
        result = CliRunner().invoke(cli, args, catch_exceptions=False)
        assert result.exit_code == 75, result.output
        assert "unreachable" in result.output and MARK not in result.output


_EMIT = """
import logging, sys
from lakehouse.cli.main import cli
cli.main(["-vv", "config", "show", "--json"], standalone_mode=False)
uri = sys.argv[1]
logging.getLogger("urllib3.connectionpool").debug("connecting to %s", uri)
logging.getLogger("pyiceberg.catalog").info("loaded catalog at " + uri)
try:
    raise ConnectionError(f"cannot reach {uri}")
except ConnectionError:
    logging.getLogger("lakehouse.x").exception("failed")
"""


@pytest.mark.parametrize("password", NO_AT)
def test_log_lines_at_vv_hide_every_password_form(password: str, tmp_path: Path) -> None:
    """Whatever library logs a catalog URI (message, arguments or traceback), the handlers
    the CLI sets up mask it."""
    uri = f"postgresql+psycopg2://lake:{password}@db:5432/x"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAKEHOUSE_", "PYICEBERG_"))}
    env["LAKEHOUSE_HOME"] = str(tmp_path / "lh")
    done = subprocess.run(
        [sys.executable, "-c", _EMIT, uri], env=env, capture_output=True, text=True, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("postgresql+psycopg2://lake:***@db:5432/x") == 3, done.stderr
    assert "DEBUG urllib3.connectionpool" in done.stderr and "Traceback" in done.stderr
    assert MARK not in done.stderr


@pytest.mark.postgres
def test_a_write_on_postgres_leaves_no_password_in_logs_or_the_table(
    postgres_server: PostgresServer, home: Path, tmp_path: Path
) -> None:
    """A real PostgreSQL catalog whose URI holds a password with every awkward character
    (the test server trusts local connections, so the password is carried, not checked)."""
    password = "Zq/Zq#Zq?Zq:Zq%40Zq%2FZq"
    plain = postgres_server.create_database("redact_pw")
    uri = plain.replace(f"//{postgres_server.user}@", f"//{postgres_server.user}:{password}@")
    assert make_url(uri).password == unquote(password)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAKEHOUSE_", "PYICEBERG_"))}
    env.update(
        LAKEHOUSE_HOME=str(home),
        LAKEHOUSE_CATALOG="pg",
        PYICEBERG_CATALOG__PG__TYPE="sql",
        PYICEBERG_CATALOG__PG__URI=uri,
        PYICEBERG_CATALOG__PG__WAREHOUSE=(tmp_path / "w").as_uri(),
    )
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "a.ndjson").write_text(
        "".join(
            json.dumps(
                {
                    "event_id": f"e{i}",
                    "user_id": "u",
                    "event_type": "view",
                    "client_ts": f"2026-01-01T00:00:{i:02d}Z",
                }
            )
            + "\n"
            for i in range(40)
        )
    )
    lakehouse = str(Path(sys.executable).with_name("lakehouse"))
    outputs = ""
    for args in (["init"], ["ingest", str(landing), "--json"], ["health"], ["config", "show"]):
        done = subprocess.run(
            [lakehouse, "-vv", *args], env=env, capture_output=True, text=True, cwd=tmp_path
        )
        assert done.returncode == 0, done.stderr[-3000:]
        outputs += done.stdout + done.stderr
        if args[0] == "ingest":
            assert json.loads(done.stdout)["records_written"] == 40
    assert "INFO writers.writer: committed batch" in outputs, outputs[-3000:]
    assert MARK not in outputs

    from pyiceberg.catalog.sql import SqlCatalog

    table = SqlCatalog("pg", uri=uri, warehouse=(tmp_path / "w").as_uri()).load_table(
        "analytics.events"
    )
    assert table.scan().to_arrow().num_rows == 40
    stored = json.dumps(
        [dict(s.summary.additional_properties) for s in table.snapshots()]
        + [table.properties, table.metadata.model_dump(mode="json")]
    )
    assert table.snapshots() and MARK not in stored


def test_redaction_is_on_the_ground_floor() -> None:
    """``lakehouse.redact`` imports nothing from the project, so every layer (the catalog
    included) can use it without an import circle."""
    code = (
        "import sys, lakehouse.redact; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('lakehouse', 'catalog', 'writers', 'maintenance')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['lakehouse', 'lakehouse.redact']"
