"""Hostile names and secrets, short mode (see hostile.py and leaks.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lakehouse.engines.athena.sql import quote_identifier
from lakehouse.engines.trino.sql import quote_ident
from lakehouse.errors import UsageError
from lakehouse.settings import TableName
from tests.reliability import hostile, leaks
from tests.reliability.harness import SUMMARIES, Figures, sqlite_target
from tests.support.postgres import PostgresServer

pytestmark = pytest.mark.slow
PLAIN = st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_]{0,20}\Z")


@settings(max_examples=300, deadline=None, database=None)
@given(st.text(max_size=40))
def test_table_names_are_plain_identifiers_or_refused(text: str) -> None:
    try:
        name = TableName.parse(text)
    except UsageError:
        return
    for part in (name.namespace, name.name):
        assert part.isascii() and (part[0].isalpha() or part[0] == "_")
        assert all(c.isalnum() or c == "_" for c in part.rstrip("\n")), part


@settings(max_examples=300, deadline=None, database=None)
@given(st.text(min_size=1, max_size=40).filter(lambda t: all(ord(c) >= 32 for c in t)))
def test_identifiers_are_quoted_so_they_round_trip(text: str) -> None:
    for quoted in (quote_ident(text), quote_identifier(text)):
        inner = quoted[1:-1]
        assert quoted[0] == quoted[-1] == '"'
        assert '"' not in inner.replace('""', "")
        assert inner.replace('""', '"') == text


def test_sql_builders_bind_step_names() -> None:
    figures = Figures()
    hostile.check_sql_builders(figures)
    assert figures.ok, figures.violations


def test_hostile_table_event_and_file_names(home: Path, tmp_path: Path) -> None:
    figures = Figures()
    target = sqlite_target(tmp_path / "home")
    hostile.check_table_names(target, tmp_path / "names", figures, cli_cases=3)
    hostile.check_event_names(target, tmp_path, figures, breakdowns=1)
    hostile.check_file_names(target, tmp_path, figures)
    SUMMARIES.append(figures.summary("hostile names"))
    assert figures.ok, figures.violations


@pytest.mark.postgres
def test_secrets_never_printed(home: Path, tmp_path: Path, postgres_server: PostgresServer) -> None:
    figures = Figures()
    leaks.check_postgres_secrets(
        postgres_server, tmp_path, figures, database=f"secrets_{tmp_path.name[-8:]}", short=True
    )
    SUMMARIES.append(figures.summary("secrets"))
    assert figures.ok, figures.violations
    assert figures.hostile_cases >= 12


@pytest.mark.aws
def test_s3_secret_never_printed(home: Path, tmp_path: Path) -> None:
    from tests.support.components import unavailable
    from tests.support.moto import MotoUnavailable, running_moto

    figures = Figures()
    try:
        with running_moto() as moto:
            leaks.check_s3_secrets(moto, tmp_path, figures)
    except MotoUnavailable as exc:
        unavailable("moto", str(exc))
    SUMMARIES.append(figures.summary("s3 secrets"))
    assert figures.ok, figures.violations
