"""Duplicate removal: within a batch, and against what is already committed in the
hours the batch touches (an anti-join over only those hours, never a full scan)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.expressions import And, BooleanExpression, Or
from pyiceberg.table import Table

from lakehouse.expressions import ts_at_least, ts_before
from writers.files import HOUR_US, micros

HOUR = timedelta(hours=1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def sort_and_dedupe(batch: pa.Table) -> tuple[pa.Table, int]:
    """Sort by ``(client_ts, event_id)`` and keep one row per ``event_id``: the one with the
    earliest ``client_ts``, then the earliest ``server_ts``. Returns the rows and how many
    duplicates were dropped."""
    if batch.num_rows == 0:
        return batch, 0
    keys = pl.from_arrow(batch.select(["client_ts", "event_id", "server_ts"]))
    assert isinstance(keys, pl.DataFrame)
    order = keys.select(pl.arg_sort_by(["client_ts", "event_id", "server_ts"])).to_series()
    if keys.get_column("event_id").n_unique() == keys.height:
        return batch.take(order.to_arrow()), 0
    ids = keys.get_column("event_id").gather(order)
    keep = order.filter(ids.is_first_distinct())
    return batch.take(keep.to_arrow()), batch.num_rows - len(keep)


def hours_of(client_ts: pa.Array | pa.ChunkedArray) -> list[datetime]:
    """The distinct hour partitions (hour starts, UTC) that timestamps fall in."""
    hours = np.unique(micros(client_ts) // HOUR_US)
    return [EPOCH + timedelta(hours=int(h)) for h in hours]


def hour_ranges_filter(hours: list[datetime]) -> BooleanExpression:
    """A row filter covering exactly these hours, contiguous hours merged into ranges."""
    ranges: list[tuple[datetime, datetime]] = []
    for hour in hours:
        if ranges and ranges[-1][1] == hour:
            ranges[-1] = (ranges[-1][0], hour + HOUR)
        else:
            ranges.append((hour, hour + HOUR))
    expr: BooleanExpression | None = None
    for lo, hi in ranges:
        part = And(ts_at_least("client_ts", lo), ts_before("client_ts", hi))
        expr = part if expr is None else Or(expr, part)
    assert expr is not None
    return expr


def committed_ids(table: Table, hours: list[datetime]) -> pa.Array:
    """``event_id`` of every committed row in these hours (current snapshot)."""
    if not hours or table.current_snapshot() is None:
        return pa.array([], pa.string())
    ids = table.scan(row_filter=hour_ranges_filter(hours), selected_fields=("event_id",)).to_arrow()
    return pc.cast(ids.column("event_id").combine_chunks(), pa.string())


def drop_committed(batch: pa.Table, table: Table) -> tuple[pa.Table, int]:
    """Remove rows whose ``event_id`` is already committed in the hours they belong to."""
    if batch.num_rows == 0:
        return batch, 0
    existing = committed_ids(table, hours_of(batch.column("client_ts")))
    if len(existing) == 0:
        return batch, 0
    seen = pc.is_in(batch.column("event_id"), value_set=existing)
    keep = pc.invert(seen)
    kept = batch.filter(keep)
    return kept, batch.num_rows - kept.num_rows


def late_mask(batch: pa.Table, allowed_lateness: timedelta) -> pa.Array:
    """True where the event's hour partition was closed when it was received: the hour's
    end plus the allowed lateness is at or before its receipt time (``server_ts``)."""
    hour_start = micros(batch.column("client_ts")) // HOUR_US * HOUR_US
    closes = hour_start + HOUR_US + allowed_lateness // timedelta(microseconds=1)
    return pa.array(closes <= micros(batch.column("server_ts")))
