"""Compaction reads a group's files as one Arrow dataset; what it reads equals what
pyiceberg's own scan reads, file by file, also after the schema evolved."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import polars as pl
import pyarrow as pa
import pytest
from pyiceberg.expressions import AlwaysTrue
from pyiceberg.io.pyarrow import ArrowScan
from pyiceberg.table import FileScanTask, Table
from pyiceberg.types import StringType

from maintenance import checks, take_inventory
from maintenance.checks import read_files, schema_history_is_stable
from maintenance.inventory import DataFileInfo
from tests.maintenance.builders import append, make_rows, sort_rows, to_arrow


def _files_and_scan(table: Table) -> tuple[list[DataFileInfo], pa.Table]:
    """The live files, and the oracle: pyiceberg's own scan of each, in the same order."""
    table.refresh()
    infos = [f for h in take_inventory(table).hours for f in h.files]
    scan = ArrowScan(table.metadata, table.io, table.schema(), AlwaysTrue())
    parts = [scan.to_table([FileScanTask(info.data_file)]) for info in infos]
    return infos, pa.concat_tables(parts)


@pytest.mark.parametrize("change", ["none", "add", "rename"])
def test_group_read_equals_pyiceberg_scan(sqlite_events: Table, change: str) -> None:
    table = sqlite_events
    rng = random.Random(4)
    hour = datetime(2024, 5, 1, 3, tzinfo=UTC)
    for b in range(4):
        append(table, sort_rows(make_rows(rng, 25, hour, f"b{b}")))
    if change == "add":
        with table.update_schema() as update:
            update.add_column("extra", StringType())
    elif change == "rename":
        with table.update_schema() as update:
            update.rename_column("properties", "props")
    table.refresh()
    assert schema_history_is_stable(table.metadata) is (change != "rename")
    infos, expected = _files_and_scan(table)
    rows, counts = read_files(table.metadata, table.io, infos)
    assert counts == [f.records for f in infos] and sum(counts) == 100
    assert rows.schema.names == expected.schema.names
    assert rows.cast(expected.schema).equals(expected)
    if change == "add":
        assert rows.column("extra").null_count == 100
    if change == "rename":
        assert rows.column("props").null_count < 100  # read under its new name


@pytest.fixture
def arrow_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One item per call of :func:`read_files` (the Arrow read) made by ``read_frame``."""
    calls: list[int] = []
    real = checks.read_files

    def counting(*args: object, **kwargs: object) -> tuple[pa.Table, list[int]]:
        calls.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(checks, "read_files", counting)
    return calls


@pytest.mark.parametrize("change", ["none", "add", "rename"])
def test_frame_read_equals_pyiceberg_scan(
    sqlite_events: Table, change: str, arrow_reads: list[int]
) -> None:
    """Compaction's frame read (Polars on a local disk) returns pyiceberg's rows, files in
    order and rows in file order; a renamed column makes it read as :func:`read_files`."""
    table = sqlite_events
    rng = random.Random(5)
    hour = datetime(2024, 5, 1, 4, tzinfo=UTC)
    for b in range(6):
        append(table, sort_rows(make_rows(rng, 20 + b, hour, f"f{b}")))
    if change == "add":
        with table.update_schema() as update:
            update.add_column("extra", StringType())
        append(table, sort_rows(make_rows(rng, 7, hour, "after")))
    elif change == "rename":
        with table.update_schema() as update:
            update.rename_column("properties", "props")
    infos, expected = _files_and_scan(table)
    rng.shuffle(infos)  # the frame follows the order asked, not the order on disk
    expected = pa.concat_tables(
        [
            ArrowScan(table.metadata, table.io, table.schema(), AlwaysTrue()).to_table(
                [FileScanTask(info.data_file)]
            )
            for info in infos
        ]
    )
    frame, counts = checks.read_frame(table.metadata, table.io, infos)
    assert counts == [f.records for f in infos]
    assert frame.height == sum(counts) == expected.num_rows
    got = frame.to_arrow(compat_level=pl.CompatLevel.oldest())
    assert got.schema.names == expected.schema.names
    assert got.cast(expected.schema).equals(expected)
    assert len(arrow_reads) == (1 if change == "rename" else 0)
    if change == "add":
        assert frame["extra"].null_count() == expected.num_rows  # no row has it set


def test_frame_read_of_a_type_polars_would_change_uses_arrow(
    sqlite_events: Table, arrow_reads: list[int]
) -> None:
    """A column type that does not come back unchanged from Polars (a fixed-width binary)
    makes the frame read go through Arrow; the values are still pyiceberg's."""
    from pyiceberg.types import FixedType

    table = sqlite_events
    with table.update_schema() as update:
        update.add_column("digest", FixedType(4))
    rows = sort_rows(make_rows(random.Random(6), 9, datetime(2024, 5, 1, 5, tzinfo=UTC), "d"))
    with_digest = to_arrow(rows).append_column(
        "digest", pa.array([i.to_bytes(4, "big") for i in range(9)], pa.binary(4))
    )
    table.append(with_digest)
    infos, expected = _files_and_scan(table)
    frame, _ = checks.read_frame(table.metadata, table.io, infos)
    assert arrow_reads == [1]
    assert frame["digest"].to_list() == expected.column("digest").to_pylist()


def test_frame_read_keeps_the_values_of_every_type_polars_reads(
    sqlite_events: Table, arrow_reads: list[int]
) -> None:
    """Columns a user's table may add (decimal, date, boolean, binary, a timestamp
    without zone, 32-bit numbers) come back from the Polars read with pyiceberg's values."""
    from decimal import Decimal

    from pyiceberg.types import (
        BinaryType,
        BooleanType,
        DateType,
        DecimalType,
        FloatType,
        IntegerType,
        TimestampType,
    )

    table = sqlite_events
    added = {
        "price": DecimalType(10, 2),
        "day": DateType(),
        "flag": BooleanType(),
        "blob": BinaryType(),
        "local_ts": TimestampType(),
        "count32": IntegerType(),
        "ratio32": FloatType(),
    }
    with table.update_schema() as update:
        for name, kind in added.items():
            update.add_column(name, kind)
    rng = random.Random(8)
    schema = table.schema().as_arrow()
    for b in range(3):
        rows = to_arrow(sort_rows(make_rows(rng, 5, datetime(2024, 5, 1, 6, tzinfo=UTC), f"t{b}")))
        n = rows.num_rows
        extra = {
            "price": pa.array(
                [Decimal(f"{i}.{b}5") if i % 3 else None for i in range(n)],
                schema.field("price").type,
            ),
            "day": pa.array([datetime(2024, 5, 1 + i).date() for i in range(n)], pa.date32()),
            "flag": pa.array([bool(i % 2) for i in range(n)]),
            "blob": pa.array([bytes([i, b]) for i in range(n)], schema.field("blob").type),
            "local_ts": pa.array([datetime(2024, 5, 1, i) for i in range(n)], pa.timestamp("us")),
            "count32": pa.array([i * 1000 + b for i in range(n)], pa.int32()),
            "ratio32": pa.array([i / 4 for i in range(n)], pa.float32()),
        }
        for name, values in extra.items():
            rows = rows.append_column(name, values)
        table.append(rows.select(schema.names).cast(schema))
    infos, expected = _files_and_scan(table)
    frame, _ = checks.read_frame(table.metadata, table.io, infos)
    assert arrow_reads == []  # Polars read them all
    got = frame.to_arrow(compat_level=pl.CompatLevel.oldest()).cast(expected.schema)
    for name in added:
        assert got.column(name).to_pylist() == expected.column(name).to_pylist(), name
    assert got.equals(expected)
