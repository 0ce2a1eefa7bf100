"""Duplicate removal: within a batch, and against what is already committed in the
hours the batch touches (an anti-join over only those hours, never a full scan)."""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.expressions import And, BooleanExpression, GreaterThanOrEqual, LessThan, Or
from pyiceberg.table import Table

from lakehouse.schema import TIMESTAMP_ARROW

HOUR = timedelta(hours=1)


def sort_and_dedupe(batch: pa.Table) -> tuple[pa.Table, int]:
    """Sort by ``(client_ts, event_id)`` and keep one row per ``event_id``: the one with the
    earliest ``client_ts``, then the earliest ``server_ts``. Returns the rows and how many
    duplicates were dropped."""
    if batch.num_rows == 0:
        return batch, 0
    df = pl.from_arrow(batch)
    assert isinstance(df, pl.DataFrame)
    df = df.sort(["client_ts", "event_id", "server_ts"])
    unique = df.unique(subset=["event_id"], keep="first", maintain_order=True)
    dropped = df.height - unique.height
    out = unique.to_arrow().cast(batch.schema)
    return out, dropped


def hours_of(client_ts: pa.Array | pa.ChunkedArray) -> list[datetime]:
    """The distinct hour partitions (hour starts, UTC) that timestamps fall in."""
    floors = pc.unique(pc.floor_temporal(client_ts, unit="hour"))
    return sorted(v for v in floors.to_pylist() if v is not None)


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
        part = And(GreaterThanOrEqual("client_ts", lo.isoformat()), LessThan("client_ts", hi.isoformat()))
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
    hour_start = pc.floor_temporal(batch.column("client_ts"), unit="hour")
    closes = pc.add(hour_start, pa.scalar(HOUR + allowed_lateness, pa.duration("us")))
    return pc.less_equal(pc.cast(closes, TIMESTAMP_ARROW), batch.column("server_ts"))
