"""The bugs the reliability campaign found, one strict xfail each: when one is fixed its
test XPASSes (and fails, being strict): turn it into a plain test then.
Repro and suggested fix of each: RELIABILITY.md, "Bugs found"."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability import known_bugs
from tests.reliability.harness import postgres_target
from tests.support.postgres import PostgresServer

pytestmark = pytest.mark.slow


@pytest.mark.xfail(
    strict=True,
    reason="BUG: a line nested ~1000 deep segfaults ingest (polars from_arrow in writers/normalize.py)",
)
def test_deep_nesting_is_rejected_not_fatal(home: Path, tmp_path: Path) -> None:
    assert known_bugs.deep_nesting_crashes_ingest(tmp_path) is None


@pytest.mark.xfail(
    strict=True, reason="BUG: properties text is stored without checking it is a JSON object"
)
def test_properties_text_must_be_a_json_object(home: Path, tmp_path: Path) -> None:
    assert known_bugs.properties_text_not_validated(tmp_path) is None


@pytest.mark.xfail(
    strict=True, reason="BUG: bytes values panic in polars; a failed write poisons the writer"
)
def test_bytes_values_are_rejected_and_the_writer_survives(home: Path, tmp_path: Path) -> None:
    assert known_bugs.bytes_value_panics(tmp_path) is None


@pytest.mark.xfail(
    strict=True, reason="BUG: re.match + '$' accepts a trailing newline in table and column names"
)
def test_names_with_a_trailing_newline_are_refused(tmp_path: Path) -> None:
    assert known_bugs.trailing_newline_names(tmp_path) is None


@pytest.mark.xfail(
    strict=True,
    reason="BUG: a column added concurrently fails the next writer's commit with ValueError",
)
def test_a_column_added_by_another_writer_does_not_fail_a_commit(
    home: Path, tmp_path: Path
) -> None:
    assert known_bugs.concurrent_column_breaks_commit(tmp_path) is None


@pytest.mark.xfail(
    strict=True,
    reason="BUG: LAKEHOUSE_HOME with ' ', '%', '#', quotes: warehouse outside it or no catalog",
)
def test_home_with_uri_characters_keeps_tables_inside(home: Path, tmp_path: Path) -> None:
    assert known_bugs.home_with_uri_characters(tmp_path) is None


@pytest.mark.xfail(strict=True, reason="BUG: config show leaves some secrets unredacted")
def test_redaction_covers_every_secret_form(tmp_path: Path) -> None:
    assert known_bugs.redaction_gaps(tmp_path) is None


@pytest.mark.postgres
@pytest.mark.xfail(
    strict=True,
    reason="BUG: a catalog outage surfaces as raw sqlalchemy OperationalError (serve dies)",
)
def test_catalog_outage_is_a_retryable_lakehouse_error(
    home: Path, tmp_path: Path, private_postgres: PostgresServer
) -> None:
    target = postgres_target(private_postgres, tmp_path / "home", "outage")
    assert known_bugs.outage_escapes_as_raw_error(private_postgres, target, tmp_path) is None
