"""The private pyiceberg APIs the project relies on, pinned to pyiceberg 0.12.0.

They are used in ``catalog/`` only: the snapshot producers (:mod:`catalog.producers`),
the transaction and the direct commit (:mod:`catalog.transaction`), the metadata update
functions (:mod:`catalog.metadata`, also checked in test_metadata_updates.py) and the
SqlCatalog overrides (:mod:`catalog.sql`). When a pyiceberg upgrade moves or changes one
of them, this file fails first and says which one; fix ``catalog/``, then the pin.
"""

from __future__ import annotations

import inspect
import random
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from pyiceberg.catalog.sql import SqlCatalog
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

from catalog import open_catalog
from catalog.metadata import apply_updates
from catalog.transaction import LakehouseTransaction, commit_updates
from lakehouse.settings import Settings
from lakehouse.tables import ensure_tables
from maintenance import compact
from maintenance.lease import AssertPropertyValue
from tests.maintenance.builders import append, make_rows, sort_rows
from tests.writers.events import BASE
from writers.files import write_sorted


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
    assert list(inspect.signature(Table._do_commit).parameters) == [
        "self",
        "updates",
        "requirements",
    ]


def test_sql_catalog_hooks_exist_with_the_used_signatures() -> None:
    from pyiceberg.table.update import (
        _apply_table_update,
        _TableMetadataUpdateContext,
        _update_table_metadata_log,
    )

    assert list(inspect.signature(SqlCatalog._update_and_stage_table).parameters) == [
        "self",
        "current_table",
        "table_identifier",
        "requirements",
        "updates",
    ]
    assert list(inspect.signature(SqlCatalog._convert_orm_to_iceberg).parameters) == [
        "self",
        "orm_table",
    ]
    assert list(inspect.signature(SqlCatalog._write_metadata).parameters) == [
        "metadata",
        "io",
        "metadata_path",
    ]
    assert callable(SqlCatalog._parse_metadata_version) and callable(SqlCatalog._load_file_io)
    assert list(inspect.signature(_apply_table_update).parameters)[1:] == [
        "base_metadata",
        "context",
    ]
    assert callable(_update_table_metadata_log)
    assert callable(_TableMetadataUpdateContext().has_changes)


def test_producer_instance_attributes_we_read_and_set(sqlite_events: Table) -> None:
    from catalog.producers import _RewriteFiles

    txn = LakehouseTransaction(sqlite_events)
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


def test_replace_commit_keeps_a_concurrent_append_into_the_same_hour(
    sqlite_events: Table, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A late append by another handle lands between the rewrite's build and its catalog
    swap (a real race: the rewrite's first swap is refused), and is kept. Judged by a
    freshly loaded handle and by the racing writer's own snapshot id."""
    table = sqlite_events
    rng = random.Random(1)
    for b in range(3):
        append(table, sort_rows(make_rows(rng, 10, _hour(0), f"b{b}")))
    late = sort_rows(make_rows(rng, 4, _hour(0), "late"))
    catalog = table.catalog
    original = catalog.commit_table
    swaps: list[str] = []
    racer: list[int] = []

    def commit_table(tbl: Table, requirements: tuple, updates: tuple):  # type: ignore[no-untyped-def]
        swaps.append("racer" if racer == [0] else "compaction")
        if not racer:  # the compaction's first swap: another writer gets there first
            racer.append(0)
            other = catalog.load_table(table.name())
            append(other, late, late=True)
            racer[0] = other.current_snapshot().snapshot_id
        return original(tbl, requirements, updates)

    monkeypatch.setattr(catalog, "commit_table", commit_table)
    result = compact(table)
    monkeypatch.undo()
    assert result.groups_committed == 1 and result.replace_commits == 1
    assert swaps.count("compaction") >= 2, swaps  # the first swap lost the race
    fresh = catalog.load_table(table.name())
    head = fresh.current_snapshot()
    assert head.summary.operation == Operation.REPLACE
    assert head.parent_snapshot_id == racer[0]  # rebuilt on top of the racing append
    ids = fresh.scan().to_arrow().column("event_id").to_pylist()
    assert len(ids) == 34 == len(set(ids))
    assert {r["event_id"] for r in late} <= set(ids)


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
    commit_updates(
        table,
        (SetPropertiesUpdate(updates={"x": "1"}),),
        (AssertPropertyValue(key="x", value=None),),
    )
    with pytest.raises(CommitFailedException):
        commit_updates(
            table,
            (SetPropertiesUpdate(updates={"x": "2"}),),
            (AssertPropertyValue(key="x", value=None),),
        )
    # A stale handle: the requirement is validated against the catalog's metadata, not ours.
    stale = table.catalog.load_table(table.name())
    commit_updates(
        table,
        (SetPropertiesUpdate(updates={"x": "3"}),),
        (AssertPropertyValue(key="x", value="1"),),
    )
    with pytest.raises(CommitFailedException):
        commit_updates(
            stale,
            (SetPropertiesUpdate(updates={"x": "4"}),),
            (AssertPropertyValue(key="x", value="1"),),
        )
    assert table.catalog.load_table(table.name()).properties["x"] == "3"


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _rows(n: int, hours: int = 3) -> pa.Table:
    ts = [BASE + timedelta(seconds=i * hours * 3600 // n) for i in range(n)]
    return pa.table(
        {
            "event_id": [f"e{i:05d}" for i in range(n)],
            "user_id": ["u"] * n,
            "event_type": ["view"] * n,
            "client_ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
            "server_ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
            "session_id": pa.array([None] * n, pa.string()),
            "properties": pa.array([None] * n, pa.string()),
        }
    )


def test_write_sorted_describes_files_like_pyiceberg_does(sqlite_settings: Settings) -> None:
    tables, _ = ensure_tables(open_catalog(sqlite_settings), sqlite_settings.table)
    events = tables.events
    batch = _rows(300).cast(events.schema().as_arrow())
    files = write_sorted(events, events.metadata, batch)
    assert len(files) == 3  # one per hour
    for data_file in files:
        assert data_file.sort_order_id == events.metadata.default_sort_order_id == 1
        on_disk = pq.read_table(data_file.file_path.removeprefix("file://"))
        assert data_file.record_count == on_disk.num_rows == 100
        hour = pc.floor_temporal(on_disk.column("client_ts"), unit="hour")[0].as_py()
        assert data_file.partition[0] == int(
            (hour - EPOCH).total_seconds() // 3600
        )  # hours since epoch
        assert set(data_file.lower_bounds) == set(data_file.upper_bounds) >= {1, 4, 5}
    with LakehouseTransaction(events) as tx, tx.update_snapshot().fast_append() as append:
        for data_file in files:
            append.append_data_file(data_file)
    assert events.scan().to_arrow().num_rows == 300
    assert [t.file.sort_order_id for t in events.scan().plan_files()] == [1, 1, 1]


def test_lakehouse_transaction_matches_pyiceberg_metadata(sqlite_settings: Settings) -> None:
    from pyiceberg.table.update import update_table_metadata

    tables, _ = ensure_tables(open_catalog(sqlite_settings), sqlite_settings.table)
    events = tables.events
    tx = LakehouseTransaction(events)
    tx.append(_rows(10).cast(events.schema().as_arrow()), snapshot_properties={"k": "1"})
    first = tx.table_metadata
    assert tx.table_metadata is first, "unchanged updates reuse the applied metadata"
    expected = update_table_metadata(events.metadata, tx._updates)
    ours = apply_updates(events.metadata, tx._updates)
    skip = {"last_updated_ms"}
    assert ours.model_dump(exclude=skip) == expected.model_dump(exclude=skip)
    tx.append(_rows(5).cast(events.schema().as_arrow()))
    assert tx.table_metadata is not first and len(tx.table_metadata.snapshots) == 2
    tx.commit_transaction()
    events.refresh()
    assert len(events.metadata.snapshots) == 2 and events.scan().to_arrow().num_rows == 15
