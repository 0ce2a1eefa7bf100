"""Prefetching the ledger files a listing from a checkpoint will ask about: only the files
whose id bounds reach past the checkpoint, each read once, the answers unchanged; and the
checkpoint itself (the greatest id) taken from bounds recorded in full, no file read."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from pyiceberg.io.pyarrow import PyArrowFile

from catalog import open_catalog
from lakehouse.settings import Settings
from lakehouse.tables import ensure_tables
from writers.ledger import Ledger
from writers.sources import Position

ROOT = "s3://bucket/events/"


def _uri(hour: int, k: int) -> str:
    return f"{ROOT}2026/12/01/{hour:02d}/part-{k}"


@pytest.fixture
def ledger(sqlite_settings: Settings) -> Ledger:
    tables, _ = ensure_tables(open_catalog(sqlite_settings), sqlite_settings.table)
    out = Ledger(tables.ingested)
    for hour in range(10):  # one ledger file per hour of keys
        out.record(
            [Position(_uri(hour, k), 100 * hour + k) for k in range(3)], [1] * 3, key=f"b{hour}"
        )
    return out


@pytest.fixture
def parquet_opens(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    opened: Counter[str] = Counter()
    real = PyArrowFile.open

    def counted(self: PyArrowFile, seekable: bool = True) -> Any:
        if self.location.endswith(".parquet"):
            opened[self.location] += 1
        return real(self, seekable)

    monkeypatch.setattr(PyArrowFile, "open", counted)
    return opened


def test_a_prefetch_reads_the_files_past_the_checkpoint_once(
    ledger: Ledger, parquet_opens: Counter[str]
) -> None:
    fresh = Ledger(ledger.table)
    assert fresh.prefetch(ROOT, f"{ROOT}2026/12/01/07") == 3  # the files of hours 7, 8, 9
    assert fresh.prefetch(ROOT, f"{ROOT}2026/12/01/07") == 0  # already under way
    asked = [_uri(h, k) for h in (7, 8, 9) for k in range(3)] + [f"{ROOT}2026/12/01/09/new"]
    got = fresh.recorded_among(asked)
    assert {k: r.size for k, r in got.items()} == {
        _uri(h, k): 100 * h + k for h in (7, 8, 9) for k in range(3)
    }
    assert len(parquet_opens) == 3 and set(parquet_opens.values()) == {1}
    # the same answers from a ledger that prefetched nothing
    assert Ledger(ledger.table).recorded_among(asked) == got


def test_a_prefetch_of_another_prefix_reads_nothing(
    ledger: Ledger, parquet_opens: Counter[str]
) -> None:
    fresh = Ledger(ledger.table)
    assert fresh.prefetch("s3://bucket/other/", "s3://bucket/other/2026") == 0
    assert fresh.prefetch(ROOT, f"{ROOT}2026/12/01/99") == 0  # past every recorded id
    assert not parquet_opens
    assert fresh.last_with_prefix(ROOT) == _uri(9, 2)


def test_the_greatest_id_comes_from_full_bounds_without_a_read(
    ledger: Ledger, parquet_opens: Counter[str]
) -> None:
    assert Ledger(ledger.table).last_with_prefix(ROOT) == _uri(9, 2)
    assert not parquet_opens
    assert Ledger(ledger.table).last_with_prefix(f"{ROOT}2026/12/01/04/") == _uri(4, 2)
    assert not parquet_opens
    # bounds not known to be whole (another metrics mode): the file is read, same answer
    with ledger.table.transaction() as tx:
        tx.set_properties({"write.metadata.metrics.column.source": "truncate(16)"})
    assert Ledger(ledger.table).last_with_prefix(ROOT) == _uri(9, 2)
    assert len(parquet_opens) == 1


def test_a_bound_as_short_as_a_truncated_one_is_checked_by_a_read(
    ledger: Ledger, parquet_opens: Counter[str]
) -> None:
    ledger.record([Position("s3://b/a/01", 1), Position("s3://b/a/02", 2)], [1, 1], key="short")
    assert Ledger(ledger.table).last_with_prefix("s3://b/a/") == "s3://b/a/02"
    assert len(parquet_opens) == 1  # 11 characters: a truncated bound would look alike
