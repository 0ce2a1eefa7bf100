"""The commit step's parts, each against what the table's metadata says (read with
pyiceberg's public API) or against values worked out by hand: the content key, the
batch-key index across expiry, the summaries each snapshot carries, the look-up head
handed to the commit requirement, a retried step's refresh, storage errors and the
files of a failed attempt."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.manifest import DataFile
from pyiceberg.table import Table, Transaction
from pyiceberg.table.snapshots import Operation, Snapshot, Summary

import writers.commit as commit
from catalog import open_catalog
from catalog.commit import CommitConflictError
from lakehouse import faults, summary
from lakehouse.errors import StorageError
from lakehouse.settings import Settings
from lakehouse.tables import ensure_tables
from tests.writers.events import rows
from tests.writers.test_commit_races import _batch


def _summaries(table: Table) -> list[dict[str, str]]:
    """The project's own summary properties of each retained snapshot, oldest first."""
    table.refresh()
    return [
        {
            k: v
            for k, v in (s.summary.additional_properties if s.summary else {}).items()
            if k.startswith("lakehouse.")
        }
        for s in table.metadata.snapshots
    ]


def _ids(*values: str | None) -> pa.Table:
    return pa.table({"event_id": pa.array(values, pa.large_string())})


# -- the content key ------------------------------------------------------------------


def test_the_content_key_tells_contents_apart_and_has_its_form() -> None:
    keys = {
        "ab": commit.content_key(_ids("a", "b")),
        "a|bc": commit.content_key(_ids("a", "bc")),
        "ab|c": commit.content_key(_ids("ab", "c")),
        "x|y": commit.content_key(_ids("x", "y")),
        "empty": commit.content_key(_ids()),
    }
    assert len(set(keys.values())) == len(keys)  # same length or same bytes: still apart
    for key in keys.values():
        assert re.fullmatch(r"c-[0-9a-f]{32}", key), key
    # the same rows give the same key, whatever their type and chunking
    chunked = pa.table({"event_id": pa.chunked_array([["a"], ["b"]], pa.string())})
    assert commit.content_key(chunked) == keys["ab"]


# -- the batch-key index --------------------------------------------------------------


def _snap(snapshot_id: int, key: str | None, sequence: int | None = -1) -> Snapshot:
    props = {summary.BATCH_KEY: key} if key is not None else {}
    return Snapshot(
        snapshot_id=snapshot_id,
        sequence_number=snapshot_id if sequence == -1 else sequence,
        timestamp_ms=snapshot_id,
        manifest_list=f"m{snapshot_id}.avro",
        summary=Summary(Operation.APPEND, **props),
    )


def test_the_key_index_keeps_a_key_until_its_last_snapshot_is_expired() -> None:
    index = commit._KeyIndex()
    s1, s2, s3, s4 = _snap(1, "k"), _snap(2, "k"), _snap(3, None), _snap(4, "j")
    index.update([s1, s2, s3])
    assert (index.lookup("k"), index.lookup("j"), index.full_passes) == ([1, 2], [], 0)
    index.update([s2, s3, s4])  # s1 expired, s4 added
    assert (index.lookup("k"), index.lookup("j"), index.full_passes) == ([2], [4], 1)
    index.update([s3, s4])  # the key's last snapshot expired
    assert (index.lookup("k"), index.lookup("j")) == ([], [4])
    assert "k" not in index.ids_of and set(index.key_of) == {3, 4}
    assert index.full_passes == 2


def test_the_key_index_orders_by_sequence_number_and_fills_gaps() -> None:
    index = commit._KeyIndex()
    newer, older = _snap(10, "k", sequence=2), _snap(11, "k", sequence=1)
    index.update([newer, older])  # listed out of commit order: the sequence decides
    assert index.lookup("k") == [11, 10]
    v1 = _snap(21, "v", sequence=None)  # no sequence number (format v1): counts as 0
    index.update([newer, older, _snap(20, "v", sequence=1), v1])
    assert index.lookup("v") == [21, 20]
    bare = Snapshot(snapshot_id=30, timestamp_ms=30, manifest_list="m30.avro", summary=None)
    gap = _snap(12, "g")
    index.update([newer, older, _snap(20, "v", sequence=1), v1, bare])
    assert index.key_of[30] is None
    # a snapshot listed before one the index knows, and missing from it, is found too
    index.update([gap, newer, older, _snap(20, "v", sequence=1), v1, bare])
    assert index.lookup("g") == [12] and index.full_passes == 1


# -- what the commits write -----------------------------------------------------------


def test_each_snapshot_carries_its_batch_writer_and_kind(settings: Settings) -> None:
    events = ensure_tables(open_catalog(settings), settings.table)[0].events
    batch = _batch(settings, range(6))
    hours = [datetime(2024, 5, 1, 0, tzinfo=UTC), datetime(2024, 5, 1, 1, tzinfo=UTC)]
    ids = commit.commit_events(
        events, batch.slice(0, 4), batch.slice(4), key="k1", late_hours=hours, writer="w-7"
    )
    assert ids == [s.snapshot_id for s in events.metadata.snapshots]
    assert _summaries(events) == [
        {
            summary.BATCH_KEY: "k1",
            summary.WRITER: "w-7",
            summary.KIND: summary.KIND_ON_TIME,
            summary.IDEMPOTENCY_KEY: "k1/on-time",
        },
        {
            summary.BATCH_KEY: "k1",
            summary.WRITER: "w-7",
            summary.KIND: summary.KIND_LATE,
            summary.LATE: "true",
            summary.LATE_HOURS: "2024-05-01T00,2024-05-01T01",
            summary.IDEMPOTENCY_KEY: "k1/late",
        },
    ]
    assert rows(events).num_rows == 6


def test_a_companion_append_carries_its_kind_and_returns_its_snapshot(
    settings: Settings,
) -> None:
    ledger = ensure_tables(open_catalog(settings), settings.table)[0].ingested
    data = _ledger_rows(ledger)
    ids = commit.append_with_key(ledger, data, key="lk", kind=summary.KIND_INGESTED)
    assert ids == [ledger.metadata.snapshots[-1].snapshot_id] and len(ids) == 1
    props = _summaries(ledger)[-1]
    assert (props[summary.BATCH_KEY], props[summary.KIND]) == ("lk", summary.KIND_INGESTED)
    again = commit.append_with_key(ledger, data, key="lk", kind=summary.KIND_INGESTED)
    assert again == ids and len(_summaries(ledger)) == 1
    assert commit.append_with_key(ledger, data.slice(0, 0), key="none", kind="x") == []


def _ledger_rows(table: Table) -> pa.Table:
    """One row of the table's own schema, every field filled with a plain value."""
    schema = table.schema().as_arrow()
    values: dict[str, Any] = {}
    for field in schema:
        if pa.types.is_timestamp(field.type):
            values[field.name] = datetime(2024, 5, 1, tzinfo=UTC)
        elif pa.types.is_integer(field.type):
            values[field.name] = 1
        elif pa.types.is_boolean(field.type):
            values[field.name] = True
        else:
            values[field.name] = "v"
    return pa.Table.from_pylist([values], schema=schema)


def test_the_requirement_starts_at_the_head_the_key_was_looked_up_at(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    tables = ensure_tables(open_catalog(settings), settings.table)[0]
    events, ledger = tables.events, tables.ingested
    seen: list[tuple[str, int | None]] = []
    real = commit.require_no_batch_key

    def spy(tx: Transaction, key: str, checked_at: int | None) -> None:
        seen.append((key, checked_at))
        real(tx, key, checked_at)

    monkeypatch.setattr(commit, "require_no_batch_key", spy)
    batch = _batch(settings, range(4))
    commit.commit_events(events, batch, batch.slice(0, 0), key="a", late_hours=[], writer="w")
    head = events.metadata.current_snapshot_id
    commit.commit_events(events, batch, batch.slice(0, 0), key="b", late_hours=[], writer="w")
    data = _ledger_rows(ledger)
    commit.append_with_key(ledger, data, key="c", kind="x")
    ledger_head = ledger.metadata.current_snapshot_id
    commit.append_with_key(ledger, data, key="d", kind="x")
    assert head is not None and ledger_head is not None
    assert seen == [("a", None), ("b", head), ("c", None), ("d", ledger_head)]


# -- retries and failures -------------------------------------------------------------


def test_a_retried_step_refreshes_once_and_only_on_the_retry(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = ensure_tables(open_catalog(settings), settings.table)[0].events
    batch = _batch(settings, range(4))
    refreshes: list[int] = []
    real_refresh = events.refresh

    def counted() -> Table:
        refreshes.append(1)
        return real_refresh()

    monkeypatch.setattr(events, "refresh", counted)
    commit.commit_events(events, batch, batch.slice(0, 0), key="a", late_hours=[], writer="w")
    assert refreshes == []  # the caller refreshed before the first attempt
    failures = [OSError("When uploading part: AWS Error SLOW_DOWN (HTTP status 503)")]
    real_write = commit.write_sorted

    def flaky(*args: Any, **kwargs: Any) -> list[DataFile]:
        if failures:
            raise failures.pop()
        return real_write(*args, **kwargs)

    monkeypatch.setattr(commit, "write_sorted", flaky)
    more = _batch(settings, range(4, 8))
    commit.commit_events(events, more, more.slice(0, 0), key="b", late_hours=[], writer="w")
    assert refreshes == [1]
    assert sorted(rows(events).column("event_id").to_pylist()) == [f"e{i:06d}" for i in range(8)]


def test_a_storage_failure_names_the_table_location(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAKEHOUSE_STORAGE_RETRIES", "1")
    tables = ensure_tables(open_catalog(settings), settings.table)[0]
    text = "When uploading part: AWS Error SLOW_DOWN (HTTP status 503)"

    def failing(*args: Any, **kwargs: Any) -> None:
        raise OSError(text)

    monkeypatch.setattr(Transaction, "append", failing)
    ledger = tables.ingested
    with pytest.raises(StorageError) as caught:
        commit.append_with_key(ledger, _ledger_rows(ledger), key="k", kind="x")
    assert str(caught.value) == f"cannot write to {ledger.location()}: {text}"
    monkeypatch.setattr(commit, "write_sorted", failing)
    events = tables.events
    batch = _batch(settings, range(2))
    with pytest.raises(StorageError) as caught:
        commit.commit_events(events, batch, batch.slice(0, 0), key="e", late_hours=[], writer="w")
    assert str(caught.value) == f"cannot write to {events.location()}: {text}"


def test_a_failed_attempt_drops_its_files_and_logs_those_it_could_not(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    events = ensure_tables(open_catalog(settings), settings.table)[0].events
    batch = _batch(settings, range(6))
    fail = [CommitFailedException("a concurrent commit won the swap")]

    class Faults:
        @staticmethod
        def point(name: str) -> None:
            if fail:
                raise fail.pop()

    monkeypatch.setattr(commit, "faults", Faults)
    kept: list[str] = []
    real_delete = events.io.delete

    def delete(path: str) -> None:
        if not kept:  # the first file of the failed attempt cannot be deleted
            kept.append(path)
            raise OSError("permission denied")
        real_delete(path)

    monkeypatch.setattr(events.io, "delete", delete)
    late_hours = [datetime(2024, 5, 1, tzinfo=UTC)]
    with caplog.at_level(logging.WARNING, logger="writers.commit"):  # on-time and late files
        commit.commit_events(
            events, batch.slice(0, 3), batch.slice(3), key="k", late_hours=late_hours, writer="w"
        )
    assert [r.getMessage() for r in caplog.records if r.name == "writers.commit"] == [
        f"could not delete {kept[0]} after a failed commit: permission denied"
    ]
    live = {f.file_path for f in events.scan().plan_files() for f in [f.file]}
    on_disk = {
        f"file://{p}" for p in Path(events.location().removeprefix("file://")).rglob("*.parquet")
    }
    assert on_disk == live | {kept[0]}  # the other files of the failed attempt are gone
    assert sorted(rows(events).column("event_id").to_pylist()) == [f"e{i:06d}" for i in range(6)]


def test_a_batch_already_committed_is_logged_and_not_written_again(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    events = ensure_tables(open_catalog(settings), settings.table)[0].events
    batch = _batch(settings, range(3))
    ids = commit.commit_events(events, batch, batch.slice(0, 0), key="k", late_hours=[], writer="w")
    with caplog.at_level(logging.INFO, logger="writers.commit"):
        again = commit.commit_events(
            events, batch, batch.slice(0, 0), key="k", late_hours=[], writer="w"
        )
    assert again == ids and len(events.metadata.snapshots) == 1
    assert [r.getMessage() for r in caplog.records if r.name == "writers.commit"] == [
        f"batch k already committed as {ids}; nothing to write"
    ]


@pytest.mark.parametrize(("value", "merged"), [("True", True), (None, False), ("false", False)])
def test_manifest_merging_follows_the_table_property(
    settings: Settings, value: str | None, merged: bool
) -> None:
    events = ensure_tables(open_catalog(settings), settings.table)[0].events
    with events.transaction() as tx:
        tx.set_properties({"commit.manifest.min-count-to-merge": "2"})
        if value is None:  # the project's tables set it: without it, no merging
            tx.remove_properties("commit.manifest-merge.enabled")
        else:
            tx.set_properties({"commit.manifest-merge.enabled": value})
    for n in range(3):
        batch = _batch(settings, range(n * 2, n * 2 + 2))
        commit.commit_events(
            events, batch, batch.slice(0, 0), key=f"k{n}", late_hours=[], writer="w"
        )
    head = events.current_snapshot()
    assert head is not None
    manifests = head.manifests(events.io)
    assert len(manifests) == (1 if merged else 3)
    assert rows(events).num_rows == 6


def test_the_files_written_fault_point_stops_before_the_commit(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = ensure_tables(open_catalog(settings), settings.table)[0].events
    monkeypatch.setattr(faults, "_hits", {})
    monkeypatch.setenv(faults.ENV, "write.files-written:1:raise")
    batch = _batch(settings, range(3))
    with pytest.raises(faults.FaultInjected, match=r"^fault point write\.files-written \(hit 1\)$"):
        commit.commit_events(events, batch, batch.slice(0, 0), key="k", late_hours=[], writer="w")
    events.refresh()
    assert events.current_snapshot() is None


def test_a_commit_that_keeps_losing_names_its_batch(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    tables = ensure_tables(open_catalog(settings), settings.table)[0]
    events, ledger = tables.events, tables.ingested
    monkeypatch.setenv("LAKEHOUSE_COMMIT_RETRIES", "2")
    for table in (events, ledger):
        with table.transaction() as tx:
            tx.set_properties(
                {"lakehouse.commit.min-wait-ms": "1", "lakehouse.commit.max-wait-ms": "2"}
            )

    class Faults:
        @staticmethod
        def point(name: str) -> None:
            raise CommitFailedException("a concurrent commit won the swap")

    monkeypatch.setattr(commit, "faults", Faults)
    batch = _batch(settings, range(2))
    with pytest.raises(CommitConflictError) as caught:
        commit.commit_events(events, batch, batch.slice(0, 0), key="k", late_hours=[], writer="w")
    name = ".".join(events.name())
    assert str(caught.value).startswith(f"commit of batch k to {name} gave up after 2 attempts")

    def losing(*args: Any, **kwargs: Any) -> None:
        raise CommitFailedException("a concurrent commit won the swap")

    monkeypatch.setattr(Transaction, "append", losing)
    with pytest.raises(CommitConflictError) as caught:
        commit.append_with_key(ledger, _ledger_rows(ledger), key="j", kind="ingested")
    name = ".".join(ledger.name())
    assert str(caught.value).startswith(f"commit of ingested of batch j to {name} gave up after")
