"""The bugs the reliability campaign found (RELIABILITY.md, "Bugs found"), all fixed: each
probe in ``known_bugs.py`` returns the bug's description while it is present, so these
tests fail if one comes back. The catalog outage (bug 4), names (bug 6), LAKEHOUSE_HOME
(bug 7) and redaction (bug 8) have fuller tests in tests/; the writers' bugs in
tests/writers/test_normalize.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability import known_bugs

pytestmark = pytest.mark.slow


def test_deep_nesting_is_rejected_not_fatal(home: Path, tmp_path: Path) -> None:
    assert known_bugs.deep_nesting_crashes_ingest(tmp_path) is None


def test_properties_text_must_be_a_json_object(home: Path, tmp_path: Path) -> None:
    assert known_bugs.properties_text_not_validated(tmp_path) is None


def test_bytes_values_are_rejected_and_the_writer_survives(home: Path, tmp_path: Path) -> None:
    assert known_bugs.bytes_value_panics(tmp_path) is None


def test_names_with_a_trailing_newline_are_refused(tmp_path: Path) -> None:
    assert known_bugs.trailing_newline_names(tmp_path) is None


def test_a_column_added_by_another_writer_does_not_fail_a_commit(
    home: Path, tmp_path: Path
) -> None:
    assert known_bugs.concurrent_column_breaks_commit(tmp_path) is None


def test_a_thousand_distinct_keys_do_not_become_a_thousand_columns(
    home: Path, tmp_path: Path
) -> None:
    assert known_bugs.column_explosion(tmp_path) is None


def test_every_password_form_is_redacted(tmp_path: Path) -> None:
    assert known_bugs.redaction_gaps(tmp_path) is None
