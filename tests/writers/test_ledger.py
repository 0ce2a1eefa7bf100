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
