"""Ledger lookups: only the asked ids, the last recorded size, prefixes, the greatest id;
and ledger files whose id bounds exclude the asked ids are not read."""

from __future__ import annotations

from typing import Any

import pytest
from pyiceberg.expressions import In

from catalog import open_catalog
from lakehouse.settings import Settings
from lakehouse.tables import ensure_tables
from writers.ledger import Ledger
from writers.sources import Position


def _uri(hour: int, k: int) -> str:
    return f"s3://bucket/events/2026/12/{1 + hour // 24:02d}/{hour % 24:02d}/part-{k}"


@pytest.fixture
def ledger(sqlite_settings: Settings) -> Ledger:
    tables, _ = ensure_tables(open_catalog(sqlite_settings), sqlite_settings.table)
    out = Ledger(tables.ingested)
    for hour in range(20):  # one ledger file per batch, each batch one hour of keys
        positions = [Position(_uri(hour, k), 100 + k) for k in range(3)]
        out.record(positions, [1, 2, 3], key=f"batch-{hour}")
    return out


def test_lookups_answer_for_the_asked_ids_only(ledger: Ledger) -> None:
    asked = [_uri(4, 1), _uri(19, 2), "s3://bucket/events/never-seen"]
    assert ledger.committed_among(asked) == {_uri(4, 1): 101, _uri(19, 2): 102}
    assert ledger.committed_among([]) == {}
    under = ledger.committed_with_prefix("s3://bucket/events/2026/12/01/07/")
    assert under == [(_uri(7, k), 100 + k) for k in range(3)]
    assert ledger.last_with_prefix("s3://bucket/events/") == _uri(19, 2)
    assert ledger.last_with_prefix("s3://bucket/other/") is None


def test_a_position_recorded_again_answers_with_its_last_size(ledger: Ledger) -> None:
    ledger.record([Position(_uri(3, 0), 50)], [1], key="again")  # rewritten, shorter
    assert ledger.committed_among([_uri(3, 0)]) == {_uri(3, 0): 50}


def test_a_lookup_reads_only_the_ledger_files_that_can_hold_the_ids(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = ledger.table
    planned: list[int] = []
    real_scan = table.scan

    def scan(*args: Any, **kwargs: Any) -> Any:
        s = real_scan(*args, **kwargs)
        planned.append(len(list(s.plan_files())))
        return s

    monkeypatch.setattr(table, "scan", scan)
    monkeypatch.setattr(table, "refresh", lambda: table)
    assert ledger.committed_among([_uri(11, 0)]) == {_uri(11, 0): 100}
    assert planned == [1]  # one of the 20 ledger files
    assert len(list(real_scan(row_filter=In("source", [_uri(11, 0)])).plan_files())) == 1
    assert len(list(real_scan().plan_files())) == 20


def test_each_ledger_file_is_read_once_per_ledger(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The listing's checkpoint (the greatest id) and then the listed ids ask about the
    same newest files: each is read from storage once; the answers stay those of a fresh
    ledger over the same table."""
    io_class = type(ledger.table.io)  # (a refresh gives the table a new FileIO object)
    opened: list[str] = []
    real_new_input = io_class.new_input

    def new_input(self: Any, location: str) -> Any:
        opened.append(location)
        return real_new_input(self, location)

    monkeypatch.setattr(io_class, "new_input", new_input)
    assert ledger.last_with_prefix("s3://bucket/events/") == _uri(19, 2)
    asked = [_uri(19, 0), _uri(19, 2), _uri(18, 1), "s3://bucket/events/never-seen"]
    expected = {_uri(19, 0): 100, _uri(19, 2): 102, _uri(18, 1): 101}
    assert ledger.committed_among(asked) == expected
    assert ledger.committed_among(asked) == expected
    data = [p for p in opened if p.endswith(".parquet")]
    assert len(data) == len(set(data)) == 2, data  # the files of hours 19 and 18, once each
    assert Ledger(ledger.table).committed_among(asked) == expected


def test_rows_recorded_without_the_newer_columns_answer_none(
    sqlite_settings: Settings,
) -> None:
    """Rows recorded without ``fingerprint`` and ``lines`` (as an older version recorded
    them) answer with None there, beside rows that have them."""
    import pyarrow as pa

    tables, _ = ensure_tables(open_catalog(sqlite_settings), sqlite_settings.table)
    table = tables.ingested
    old = pa.table(
        {
            "source": pa.array([_uri(1, 0)], pa.string()),
            "size": pa.array([10], pa.int64()),
            "records": pa.array([2], pa.int64()),
            "batch_key": pa.array(["old"], pa.string()),
            "ingested_at": pa.array(
                [pa.scalar(0, pa.timestamp("us", tz="UTC")).as_py()], pa.timestamp("us", tz="UTC")
            ),
        }
    )
    schema = table.schema().as_arrow()
    table.append(old.cast(pa.schema([schema.field(n) for n in old.column_names])))
    ledger = Ledger(table)
    ledger.record([Position(_uri(2, 0), 20)], [3], key="new", fingerprints=["f"], lines=[3])
    got = ledger.recorded_among([_uri(1, 0), _uri(2, 0)])
    assert (got[_uri(1, 0)].size, got[_uri(1, 0)].fingerprint, got[_uri(1, 0)].lines) == (
        10,
        None,
        None,
    )
    assert (got[_uri(2, 0)].fingerprint, got[_uri(2, 0)].lines) == ("f", 3)
