"""The private pyiceberg APIs maintenance relies on, pinned to pyiceberg 0.12.0.

When a pyiceberg upgrade moves or changes any of these, this file fails first and says
which one; fix maintenance/replace.py, manifests.py, rewrite.py or lease.py, then the pin.
"""

from __future__ import annotations

import inspect
import random
import threading
from datetime import UTC, datetime

import pytest
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.manifest import ManifestWriter
from pyiceberg.table import Table, Transaction
from pyiceberg.table.snapshots import Operation, Summary, update_snapshot_summaries
from pyiceberg.table.update import SetPropertiesUpdate, ValidatableTableRequirement
from pyiceberg.table.update.snapshot import CommitWindow, _OverwriteFiles, _SnapshotProducer
from pyiceberg.table.update.validate import (
    _validate_data_files_exist,
    _validate_no_new_deletes_for_data_files,
)

from maintenance import compact, plan_compaction
from maintenance.lease import AssertPropertyValue
from tests.maintenance.builders import append, make_rows, sort_rows


def test_pyiceberg_is_the_pinned_version() -> None:
    import pyiceberg

    assert pyiceberg.__version__ == "0.12.0"


def test_snapshot_producer_hooks_exist_with_the_used_signatures() -> None:
    assert issubclass(_OverwriteFiles, _SnapshotProducer)
    params = list(inspect.signature(_OverwriteFiles.__init__).parameters)
    assert params[:4] == ["self", "operation", "transaction", "io"]
    assert "snapshot_properties" in params
    for name in (
        "_summary",
        "_validate_concurrency",
        "_existing_manifests",
        "_deleted_entries",
        "new_manifest_writer",
        "delete_data_file",
        "append_data_file",
        "_refresh_for_retry",
        "_commit",
    ):
        assert callable(getattr(_OverwriteFiles, name)), name
    assert list(inspect.signature(CommitWindow.resolve).parameters) == [
        "metadata",
        "base_id",
        "branch",
    ]
    assert list(inspect.signature(_validate_data_files_exist).parameters) == [
        "table",
        "starting_snapshot",
        "data_files",
        "parent_snapshot",
    ]
    assert list(inspect.signature(_validate_no_new_deletes_for_data_files).parameters) == [
        "table",
        "starting_snapshot",
        "data_filter",
        "data_files",
        "parent_snapshot",
    ]
    assert callable(ManifestWriter.existing)
    assert "_register_snapshot_producer" in dir(Transaction)
    assert callable(Table._do_commit)


def test_producer_instance_attributes_we_read_and_set(sqlite_events: Table) -> None:
    from maintenance.replace import LeanTransaction, _RewriteFiles

    txn = LeanTransaction(sqlite_events)
    assert txn._updates == () and txn.table_metadata is sqlite_events.metadata
    producer = _RewriteFiles(operation=Operation.OVERWRITE, transaction=txn, io=sqlite_events.io)
    for name in (
        "_deleted_data_files",
        "_parent_snapshot_id",
        "_snapshot_id",
        "_target_branch",
        "_transaction",
        "_io",
        "_commit_window",
        "_starting_snapshot_id",
        "_added_data_files",
    ):
        assert hasattr(producer, name), name
    for name in (
        "_build_manifest_evaluator",
        "_validate_required_deletes",
        "spec",
        "new_manifest_writer",
    ):
        assert callable(getattr(producer, name)), name
    assert producer._target_branch == "main"


def test_summary_totals_reject_replace_so_we_relabel() -> None:
    with pytest.raises(ValueError, match="not implemented"):
        update_snapshot_summaries(Summary(Operation.REPLACE))
    assert Summary(Operation.REPLACE, **{"a": "1"}).operation == Operation.REPLACE


def test_parquet_statistics_helpers_exist() -> None:
    from pyiceberg.io.pyarrow import (
        ArrowScan,
        compute_statistics_plan,
        data_file_statistics_from_parquet_metadata,
        parquet_path_to_id_mapping,
    )

    assert list(inspect.signature(data_file_statistics_from_parquet_metadata).parameters)[:3] == [
        "parquet_metadata",
        "stats_columns",
        "parquet_column_mapping",
    ]
    assert callable(compute_statistics_plan) and callable(parquet_path_to_id_mapping)
    assert list(inspect.signature(ArrowScan.__init__).parameters)[:5] == [
        "self",
        "table_metadata",
        "io",
        "projected_schema",
        "row_filter",
    ]


def _hour(h: int) -> datetime:
    return datetime(2024, 5, 1, h, tzinfo=UTC)


def test_replace_commit_keeps_a_concurrent_append_into_the_same_hour(sqlite_events: Table) -> None:
    table = sqlite_events
    rng = random.Random(1)
    for b in range(3):
        append(table, sort_rows(make_rows(rng, 10, _hour(0), f"b{b}")))
    late = sort_rows(make_rows(rng, 4, _hour(0), "late"))
    result = compact(table, before_commit=lambda group: append(table, late, late=True))
    assert result.groups_committed == 1 and result.replace_commits == 1
    table.refresh()
    assert table.current_snapshot().summary.operation == Operation.REPLACE
    assert table.scan().to_arrow().num_rows == 34


def test_replace_commit_fails_validation_on_a_concurrent_delete(sqlite_events: Table) -> None:
    table = sqlite_events
    rng = random.Random(2)
    for b in range(3):
        append(table, sort_rows(make_rows(rng, 10, _hour(0), f"b{b}")))

    calls = []

    def delete_one_input(group: object) -> None:
        calls.append(group)
        if len(calls) > 1:
            return
        other = table.catalog.load_table(table.name())
        victim = next(iter(other.scan().plan_files())).file
        with other.transaction() as txn, txn.update_snapshot().overwrite() as ow:
            ow.delete_data_file(victim)

    result = compact(table, before_commit=delete_one_input)
    # The group lost, was re-planned on the new state and then committed without the deleted file.
    assert len(calls) == 2
    assert result.groups_committed == 1 and result.groups_skipped == 0
    table.refresh()
    assert table.scan().to_arrow().num_rows == 20


def test_custom_requirement_is_checked_inside_the_catalog_swap(sqlite_events: Table) -> None:
    table = sqlite_events
    assert issubclass(AssertPropertyValue, ValidatableTableRequirement)
    table._do_commit(
        (SetPropertiesUpdate(updates={"x": "1"}),), (AssertPropertyValue(key="x", value=None),)
    )
    with pytest.raises(CommitFailedException):
        table._do_commit(
            (SetPropertiesUpdate(updates={"x": "2"}),), (AssertPropertyValue(key="x", value=None),)
        )
    # A stale handle: the requirement is validated against the catalog's metadata, not ours.
    stale = table.catalog.load_table(table.name())
    table._do_commit(
        (SetPropertiesUpdate(updates={"x": "3"}),), (AssertPropertyValue(key="x", value="1"),)
    )
    with pytest.raises(CommitFailedException):
        stale._do_commit(
            (SetPropertiesUpdate(updates={"x": "4"}),), (AssertPropertyValue(key="x", value="1"),)
        )
    assert table.catalog.load_table(table.name()).properties["x"] == "3"


def test_plan_uses_a_consistent_snapshot_under_concurrent_appends(sqlite_events: Table) -> None:
    table = sqlite_events
    rng = random.Random(3)
    for b in range(4):
        append(table, sort_rows(make_rows(rng, 5, _hour(1), f"c{b}")))
    stop = threading.Event()

    def writer() -> None:
        other = table.catalog.load_table(table.name())
        i = 0
        while not stop.is_set():
            append(other, sort_rows(make_rows(rng, 2, _hour(2), f"w{i}")))
            i += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        plan = plan_compaction(table)
    finally:
        stop.set()
        thread.join()
    assert plan.metadata is not None and plan.metadata.current_snapshot_id == plan.snapshot_id
