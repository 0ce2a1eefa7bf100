"""Builders of test events and readers of what landed, shared by writer tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pyiceberg.table import Table

BASE = datetime(2024, 5, 1, tzinfo=UTC)


def event(
    i: int,
    *,
    minutes: float | None = None,
    delay: timedelta = timedelta(seconds=5),
    user: str | None = None,
    kind: str = "view",
    **extra: Any,
) -> dict[str, Any]:
    client = BASE + timedelta(minutes=i * 7 if minutes is None else minutes)
    return {
        "event_id": f"e{i:06d}",
        "user_id": user or f"u{i % 5}",
        "event_type": kind,
        "client_ts": client.isoformat().replace("+00:00", "Z"),
        "server_ts": (client + delay).isoformat().replace("+00:00", "Z"),
        **extra,
    }


def rows(table: Table) -> pa.Table:
    table.refresh()
    return table.scan().to_arrow()


def data_files(table: Table) -> list[str]:
    table.refresh()
    return [task.file.file_path for task in table.scan().plan_files()]


def read_file(path: str) -> pa.Table:
    return pq.read_table(path.removeprefix("file://"))


def assert_sorted(t: pa.Table) -> None:
    keys = list(
        zip(t.column("client_ts").to_pylist(), t.column("event_id").to_pylist(), strict=True)
    )
    assert keys == sorted(keys), "file is not sorted by (client_ts, event_id)"
