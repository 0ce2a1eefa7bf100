"""Duplicate removal: within a batch, and against what is already committed in the
hours the batch touches (an anti-join over only those hours, never a full scan)."""

from __future__ import annotations

from bisect import bisect_left
from collections import OrderedDict
from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.expressions import And, BooleanExpression, Or
from pyiceberg.table import Table
from pyiceberg.table.snapshots import Operation
from pyiceberg.utils.concurrent import ExecutorFactory

from lakehouse import summary as summary_names
from lakehouse.expressions import ts_at_least, ts_before
from lakehouse.hours import HOUR, hour_start, hours_of_micros, late_micros
from writers.files import micros


def sort_and_dedupe(batch: pa.Table) -> tuple[pa.Table, int]:
    """Sort by ``(client_ts, event_id)`` and keep one row per ``event_id``: the one with the
    earliest ``client_ts``, then the earliest ``server_ts``. Returns the rows and how many
    duplicates were dropped."""
    if batch.num_rows == 0:
        return batch, 0
    ids = pl.Series(batch.column("event_id").combine_chunks())
    distinct = ExecutorFactory.get_or_create().submit(ids.n_unique)  # beside the sort
    order = sort_order(batch)
    if distinct.result() == len(ids):
        return (batch if order is None else take(batch, order)), 0
    if order is not None:
        ids = ids.gather(order)
    first = ids.is_first_distinct().to_numpy()
    keep = np.flatnonzero(first) if order is None else order[first]
    return take(batch, keep), batch.num_rows - len(keep)


def take(table: pa.Table, rows: np.ndarray) -> pa.Table:
    """``table.take(rows)``, its columns gathered on two threads (each releases the GIL)."""
    if table.num_rows < 100_000 or table.num_columns < 2:
        return table.take(pa.array(rows))
    indices = pa.array(rows)
    columns = list(range(table.num_columns))
    # alternate by size so the two halves weigh about the same
    columns.sort(key=lambda i: table.column(i).nbytes, reverse=True)
    halves = [columns[0::2], columns[1::2]]
    pool = ExecutorFactory.get_or_create()
    parts = list(pool.map(lambda cols: table.select(cols).take(indices), halves))
    by_name = {name: part.column(name) for part in parts for name in part.column_names}
    return pa.table([by_name[n] for n in table.column_names], schema=table.schema)


# More tied client times than this share of the rows (coarse client clocks): sort on
# all keys at once instead of fixing the ties one run at a time.
_TIES_FOR_FULL_SORT = 0.01
_MIN_TIES_FOR_FULL_SORT = 64


def sort_order(batch: pa.Table) -> np.ndarray | None:
    """Row order by ``(client_ts, event_id, server_ts)``, or None when the rows are in
    that order already. Sorting the integer timestamps and then only the (rare, at
    microsecond precision) runs of equal ones is 2-3x faster than a sort on all keys."""
    ts = micros(batch.column("client_ts"))
    ascending = bool(np.all(ts[1:] >= ts[:-1]))
    order = np.arange(len(ts)) if ascending else np.argsort(ts, kind="stable")
    sorted_ts = ts if ascending else ts[order]
    tied = np.flatnonzero(sorted_ts[1:] == sorted_ts[:-1])
    if len(tied) == 0:
        return None if ascending else order
    if len(tied) > max(_MIN_TIES_FOR_FULL_SORT, _TIES_FOR_FULL_SORT * len(ts)):
        frame = pl.from_arrow(batch.select(["client_ts", "event_id", "server_ts"]))
        assert isinstance(frame, pl.DataFrame)
        full = frame.select(pl.arg_sort_by(["client_ts", "event_id", "server_ts"]))
        full_order = full.to_series().to_numpy()
        return None if np.array_equal(full_order, np.arange(len(ts))) else full_order
    # runs of equal timestamps: positions tied[k] .. tied[k]+1 are equal; merge into runs
    starts = tied[np.concatenate(([True], np.diff(tied) > 1))]
    ends = tied[np.concatenate((np.diff(tied) > 1, [True]))] + 2
    ids = batch.column("event_id")
    servers = batch.column("server_ts")
    changed = not ascending
    for lo, hi in zip(starts.tolist(), ends.tolist(), strict=True):
        rows = order[lo:hi]
        taken = pa.array(rows)
        keys = list(
            zip(
                ids.take(taken).to_pylist(),
                micros(servers.take(taken)).tolist(),
                rows.tolist(),
                strict=True,
            )
        )
        ranked = [row for *_, row in sorted(keys)]
        if ranked != rows.tolist():
            if not changed:
                order = order.copy()
                changed = True
            order[lo:hi] = ranked
    return order if changed else None


def distinct_hours(hours: np.ndarray) -> np.ndarray:
    """The distinct values of ``hours``, ascending; a linear pass when they are sorted
    already (a sorted batch), else ``np.unique``."""
    if len(hours) > 1 and bool(np.all(hours[1:] >= hours[:-1])):
        return hours[np.concatenate(([True], hours[1:] != hours[:-1]))]
    return np.unique(hours)


def hours_of(client_ts: pa.Array | pa.ChunkedArray) -> list[datetime]:
    """The distinct hour partitions (hour starts, UTC) that timestamps fall in."""
    hours = distinct_hours(hours_of_micros(micros(client_ts)))
    return [hour_start(int(h)) for h in hours]


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


def may_hold(table: Table, hours: list[int], ids: pa.Array | pa.ChunkedArray) -> bool:
    """Whether a data file of these hours (hours since the epoch) may hold one of ``ids``,
    judged from the manifests: a file whose ``event_id`` lower and upper bounds (truncated
    bounds still enclose every value) leave out every id cannot; a file without readable
    bounds, or a null among the ids, may."""
    if ids.null_count:
        return True
    values = sorted(set(pc.cast(ids, pa.string()).to_pylist()))
    if not values:
        return False
    field_id = table.schema().find_field("event_id").field_id
    scan = table.scan(row_filter=hour_ranges_filter([hour_start(h) for h in hours]))
    for task in scan.plan_files():
        low = (task.file.lower_bounds or {}).get(field_id)
        high = (task.file.upper_bounds or {}).get(field_id)
        try:
            lower, upper = low.decode(), high.decode()  # type: ignore[union-attr]
        except (AttributeError, UnicodeDecodeError):  # no bounds, or not text
            return True
        first = bisect_left(values, lower)
        if first < len(values) and values[first] <= upper:
            return True
    return False


# Snapshots that never change which ids an hour holds: rewrites by maintenance (which
# only drop duplicate copies) and manifest rewrites.
_ID_PRESERVING_KINDS = summary_names.MAINTENANCE_KINDS


class CommittedIds:
    """The ``event_id`` values committed per hour, as of one snapshot, kept current across
    the owner's own commits, so a writer committing micro-batches does not rescan its
    hours each time (that scan grew with every commit).

    Before each use the cache checks the snapshots committed since it was current: the
    owner's own commits were added to it (:meth:`record`), rewrites by maintenance keep
    every id, and anything else (another writer's append, a delete) empties it, so the
    next lookup scans again. It holds at most ``max_ids`` ids, dropping whole hours
    least recently used first.
    """

    def __init__(self, max_ids: int = 4_000_000) -> None:
        self.max_ids = max_ids
        self._as_of: int | None = None
        self._table: str | None = None
        self._hours: OrderedDict[int, list[pa.Array]] = OrderedDict()
        self._size = 0
        self.scans = 0  # hours scanned, for tests and logs

    def lookup(self, table: Table, hours: list[int], ids: pa.Array | None = None) -> pa.Array:
        """Committed ids in these hours (hours since the epoch) at the table's head. With
        the batch's ``ids``, a cold cache first checks the hours' data files: when no
        file's ``event_id`` bounds can hold one of them, nothing is read (and the hours
        are not cached; the next lookup reads them)."""
        head = table.current_snapshot()
        if head is None or not hours:
            return pa.array([], pa.large_string())
        if not self._current_at(table, head.snapshot_id):
            self.clear()
        missing = [h for h in hours if h not in self._hours]
        if missing and not (
            ids is not None and self._as_of is None and not may_hold(table, missing, ids)
        ):
            self._load(table, missing)
        self._as_of, self._table = head.snapshot_id, table.metadata.table_uuid.hex
        chunks: list[pa.Array] = []
        for h in hours:
            if h in self._hours:
                self._hours.move_to_end(h)
                chunks.extend(self._hours[h])
        self._trim(keep=set(hours))
        if not chunks:
            return pa.array([], pa.large_string())
        return pa.chunked_array(chunks, pa.large_string()).combine_chunks()

    def record(self, table: Table, rows: pa.Table, snapshot_ids: list[int]) -> None:
        """Add the owner's committed ``rows``, just committed as ``snapshot_ids`` (in
        commit order). If the cache was not current at the first one's parent (another
        commit came in between) it is left as it is: the next lookup finds the snapshot it
        does not know and starts over."""
        if not snapshot_ids or self._as_of is None:
            return
        first = table.metadata.snapshot_by_id(snapshot_ids[0])
        if first is None or first.parent_snapshot_id != self._as_of:
            return
        hours = hours_of_micros(micros(rows.column("client_ts")))
        ids = pc.cast(rows.column("event_id"), pa.large_string()).combine_chunks()
        for h in distinct_hours(hours).tolist():
            if h in self._hours:
                part = ids.filter(pa.array(hours == h))
                self._hours[h].append(part)
                self._size += len(part)
        self._as_of = snapshot_ids[-1]
        self._trim(keep=set())

    def clear(self) -> None:
        self._hours.clear()
        self._size = 0
        self._as_of = None

    def _current_at(self, table: Table, head: int) -> bool:
        """Whether every snapshot between the cache's and ``head`` keeps the ids."""
        if self._as_of is None or self._table != table.metadata.table_uuid.hex:
            return False
        snapshot_id: int | None = head
        for _ in range(10_000):
            if snapshot_id == self._as_of:
                return True
            snap = table.metadata.snapshot_by_id(snapshot_id) if snapshot_id is not None else None
            if snap is None:
                return False  # the chain is broken (expired): start over
            summary = snap.summary
            kind = summary.additional_properties.get(summary_names.KIND) if summary else None
            if not (
                (summary is not None and summary.operation == Operation.REPLACE)
                or kind in _ID_PRESERVING_KINDS
            ):
                return False
            snapshot_id = snap.parent_snapshot_id
        return False

    def _load(self, table: Table, hours: list[int]) -> None:
        self.scans += len(hours)
        starts = [hour_start(h) for h in hours]
        rows = table.scan(
            row_filter=hour_ranges_filter(starts), selected_fields=("event_id", "client_ts")
        ).to_arrow()
        for h in hours:
            self._hours[h] = []
        if rows.num_rows:
            found = hours_of_micros(micros(rows.column("client_ts")))
            ids = pc.cast(rows.column("event_id"), pa.large_string()).combine_chunks()
            for h in hours:
                part = ids.filter(pa.array(found == h))
                if len(part):
                    self._hours[h].append(part)
                    self._size += len(part)

    def _trim(self, keep: set[int]) -> None:
        while self._size > self.max_ids:
            victim = next((h for h in self._hours if h not in keep), None)
            if victim is None:
                return
            self._size -= sum(len(a) for a in self._hours.pop(victim))


def drop_committed(
    batch: pa.Table, table: Table, cache: CommittedIds | None = None
) -> tuple[pa.Table, int]:
    """Remove rows whose ``event_id`` is already committed in the hours they belong to."""
    if batch.num_rows == 0:
        return batch, 0
    if cache is None:
        existing = committed_ids(table, hours_of(batch.column("client_ts")))
    else:
        hours = distinct_hours(hours_of_micros(micros(batch.column("client_ts")))).tolist()
        existing = cache.lookup(table, hours, batch.column("event_id"))
    if len(existing) == 0:
        return batch, 0
    seen = pc.is_in(batch.column("event_id"), value_set=existing)
    keep = pc.invert(seen)
    kept = batch.filter(keep)
    return kept, batch.num_rows - kept.num_rows


def late_mask(batch: pa.Table, allowed_lateness: timedelta) -> pa.Array:
    """True where the event's hour partition was closed when it was received: the hour's
    end plus the allowed lateness is at or before its receipt time (``server_ts``); the
    rule of :mod:`lakehouse.hours`."""
    client, server = micros(batch.column("client_ts")), micros(batch.column("server_ts"))
    return pa.array(late_micros(client, server, allowed_lateness))
