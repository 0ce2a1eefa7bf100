"""How :func:`maintenance.replace.commit_rewrite` drives its attempts: each attempt is
given the plan's base, the run's checker and the checker's manifest entry cache; a lost
catalog race is tried again up to the policy's attempts and then named as "a rewrite";
a failed validation is never tried again (the plan must be made afresh), even when the
snapshot the attempt started from was expired meanwhile.

The attempt itself (``commit_file_rewrite``, one pyiceberg commit) is replaced by a
recorder, so each case decides exactly what every attempt meets."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest
from pyiceberg.exceptions import CommitFailedException, ValidationException
from pyiceberg.manifest import ManifestContent
from pyiceberg.table import Table
from pyiceberg.table.snapshots import Operation, Snapshot, Summary

from catalog import commit as commit_module
from catalog.commit import CommitConflictError, Conflict, RetryPolicy
from catalog.producers import ManifestEntryCache
from maintenance import replace as replace_module
from maintenance.errors import RewriteConflictError
from maintenance.replace import ConflictChecker, commit_rewrite
from tests.maintenance.builders import append, hour_start, make_rows, sort_rows
from tests.maintenance.test_replace_deletes import (
    DELETED,
    IO,
    REWRITTEN,
    _entry,
    _Manifest,
    _Metadata,
)

NO_WAIT = RetryPolicy(attempts=3, min_wait=timedelta(0), max_wait=timedelta(0))


class _Attempts:
    """Stands in for ``commit_file_rewrite``: records each call, raises ``error``."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.calls: list[dict[str, Any]] = []

    def __call__(self, table: Table, removed: list, added: list, **kwargs: Any) -> Snapshot:
        self.calls.append({"removed": removed, "added": added, **kwargs})
        raise self.error


@pytest.fixture
def table(sqlite_events: Table) -> Table:
    append(sqlite_events, sort_rows(make_rows(random.Random(5), 4, hour_start(0), "a")))
    sqlite_events.refresh()
    return sqlite_events


def test_a_lost_race_is_tried_again_with_the_plans_base_and_the_runs_checker(
    table: Table, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = table.metadata.current_snapshot_id
    attempts = _Attempts(CommitFailedException("another commit won the swap"))
    monkeypatch.setattr(replace_module, "commit_file_rewrite", attempts)
    checker = ConflictChecker(table.io, base)
    with pytest.raises(CommitConflictError) as caught:
        commit_rewrite(
            table, [], [], base_snapshot_id=base, replace=True, checker=checker, policy=NO_WAIT
        )
    assert len(attempts.calls) == 3  # the policy's attempts, not the default 6
    assert str(caught.value) == (
        f"commit of a rewrite to {'.'.join(table.name())} gave up after 3 attempts: "
        f"{Conflict.LOST_RACE.value} (another commit won the swap)"
    )
    assert caught.value.attempts == 3 and caught.value.conflict == Conflict.LOST_RACE
    for call in attempts.calls:
        assert call["base_snapshot_id"] == base
        assert call["validator"] is checker
        assert call["replace"] is True
        assert isinstance(call["entries"], ManifestEntryCache)
        assert call["entries"] is checker.entries  # one cache for the run's commits


def test_without_a_checker_each_attempt_gets_one_made_for_the_base(
    table: Table, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = table.metadata.current_snapshot_id
    attempts = _Attempts(CommitFailedException("lost"))
    monkeypatch.setattr(replace_module, "commit_file_rewrite", attempts)
    with pytest.raises(CommitConflictError):
        commit_rewrite(table, [], [], base_snapshot_id=base, replace=False, policy=NO_WAIT)
    validators = {id(call["validator"]) for call in attempts.calls}
    assert len(attempts.calls) == 3 and len(validators) == 1  # one checker across retries
    validator = attempts.calls[0]["validator"]
    assert validator.base_snapshot_id == base
    assert all(call["entries"] is validator.entries for call in attempts.calls)
    assert all(call["replace"] is False for call in attempts.calls)


def test_a_failed_validation_is_not_tried_again_even_when_its_start_was_expired(
    table: Table, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = table.metadata.current_snapshot_id
    attempts = _Attempts(ValidationException("Data files were concurrently deleted"))
    monkeypatch.setattr(replace_module, "commit_file_rewrite", attempts)
    # the snapshot the attempt started from is gone: the generic policy would retry this
    monkeypatch.setattr(commit_module, "classify", lambda *_: Conflict.BASE_EXPIRED)
    with pytest.raises(RewriteConflictError) as caught:
        commit_rewrite(table, [], [], base_snapshot_id=base, replace=True, policy=NO_WAIT)
    assert len(attempts.calls) == 1
    assert str(caught.value) == (
        "rewrite conflicts with a concurrent change: Data files were concurrently deleted"
    )


def test_a_snapshot_without_a_summary_is_read_not_taken_for_an_append(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Format v1 allows a snapshot without a summary: its manifests must be read."""

    def snapshot(snapshot_id: int, parent: int | None, summary: Summary | None) -> Snapshot:
        return Snapshot(
            snapshot_id=snapshot_id,
            parent_snapshot_id=parent,
            sequence_number=snapshot_id,
            timestamp_ms=snapshot_id,
            manifest_list=f"snap-{snapshot_id}.avro",
            summary=summary,
        )

    listed = {2: [_Manifest(ManifestContent.DATA, 2, [_entry(DELETED, 2, REWRITTEN[0])])]}
    monkeypatch.setattr(Snapshot, "manifests", lambda self, io: listed.get(self.snapshot_id, []))
    meta = _Metadata([snapshot(1, None, Summary(Operation.APPEND)), snapshot(2, 1, None)])
    with pytest.raises(ValidationException) as caught:
        ConflictChecker(IO, 1).check(meta, 2, REWRITTEN)  # type: ignore[arg-type]
    assert str(caught.value) == (
        "Data files were concurrently deleted by snapshot 2: ['data/h5-a.parquet']"
    )
