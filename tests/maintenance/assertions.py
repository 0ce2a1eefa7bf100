"""Assertions on a compacted table, by content."""

from __future__ import annotations

from collections import Counter

import pyarrow.parquet as pq
from pyiceberg.table import Table

from maintenance.checks import is_sorted
from maintenance.paths import canonical
from tests.maintenance.builders import Fed, multiset, table_rows


def live_files(table: Table) -> list[tuple[str, int, int | None, int]]:
    """(path, hour, sort_order_id, size) of every live data file."""
    return [
        (
            t.file.file_path,
            int(t.file.partition[0]),
            t.file.sort_order_id,
            int(t.file.file_size_in_bytes),
        )
        for t in table.scan().plan_files()
    ]


def assert_compacted(table: Table, fed: Fed, *, max_files_per_hour: int = 1) -> None:
    """Every closed hour has few files, each sorted; no duplicate event_id; the rows are
    exactly what was fed minus the duplicates (earliest server_ts kept)."""
    table.refresh()
    per_hour = Counter(hour for _, hour, _, _ in live_files(table))
    assert per_hour and max(per_hour.values()) <= max_files_per_hour, per_hour
    for path, _, sort_order_id, _ in live_files(table):
        assert sort_order_id == table.sort_order().order_id
        assert is_sorted(pq.read_table(canonical(path), columns=["client_ts", "event_id"]))
    rows = table_rows(table)
    ids = Counter(r["event_id"] for r in rows)
    assert max(ids.values()) == 1
    assert multiset(rows) == multiset(fed.expected())
