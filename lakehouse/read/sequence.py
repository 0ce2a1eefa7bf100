"""The ordered view: every event with its position in its user's client-time sequence.

Columns: every column of the events table, plus

``event_seq`` (BIGINT)
    1-based position of the event in its user's sequence, ordered by
    ``(client_ts, event_id)``: ties in ``client_ts`` are broken by ``event_id``
    (unique, so the numbering is deterministic).
``prev_event_type`` (VARCHAR)
    ``event_type`` of the previous event in that sequence; NULL for the user's first event.
``millis_since_prev`` (BIGINT)
    ``floor(epoch_us(client_ts) / 1000) - floor(epoch_us(prev client_ts) / 1000)``: the
    difference of the two client timestamps, each truncated to whole milliseconds. This is
    exactly what Trino's ``date_diff('millisecond', prev, client_ts)`` returns for
    ``timestamp(6) with time zone`` (it compares epoch milliseconds), so two events 0.2 ms
    apart across a millisecond boundary give 1, and within one millisecond give 0. Never
    negative. NULL for the user's first event.

The sequence is computed over the user's whole history (or, with a pinned snapshot, the
history in that snapshot): a client-time range only selects which rows are returned, as
``SELECT * FROM events_ordered WHERE client_ts >= ... AND client_ts < ...`` does on Trino.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from lakehouse.errors import UsageError
from lakehouse.read.source import check_range, check_snapshot, open_events_table, scan_table
from lakehouse.settings import Settings

if TYPE_CHECKING:
    import polars as pl

ORDER_COLUMNS = ("user_id", "client_ts", "event_id")
ORDERED_VIEW_COLUMNS = ("event_seq", "prev_event_type", "millis_since_prev")


def _plain(name: str) -> str:
    return name


def ordered_columns(
    column: Callable[[str], str] = _plain, alias: Callable[[str], str] = _plain
) -> list[str]:
    """The SQL of the ordered view's three columns (``event_seq``, ``prev_event_type``,
    ``millis_since_prev``), the one definition every engine uses. ``column`` renders a
    column of the table (e.g. qualified and quoted), ``alias`` a new column's name. The
    window is spelled out each time (no WINDOW clause) so that the text also runs on
    engines without named windows."""
    user, ts, event_id, event_type = map(column, ("user_id", "client_ts", "event_id", "event_type"))
    window = f"OVER (PARTITION BY {user} ORDER BY {ts}, {event_id})"
    seq, prev, millis = map(alias, ORDERED_VIEW_COLUMNS)
    return [
        f"row_number() {window} AS {seq}",
        f"lag({event_type}) {window} AS {prev}",
        f"date_diff('millisecond', lag({ts}) {window}, {ts}) AS {millis}",
    ]


# The body of the Trino view ``events_ordered``; ``{table}`` is an already-quoted table
# reference.
ORDERED_VIEW_SQL = (
    "SELECT\n    e.*,\n    " + ",\n    ".join(ordered_columns()) + "\nFROM {table} AS e"
)

_UNSAFE = re.compile(r"[;\n\r]|--|/\*")


def ordered_view_sql(table_ref: str) -> str:
    """The SELECT that defines the ordered view over ``table_ref``, e.g.
    ``ordered_view_sql('"lakehouse"."analytics"."events"')``.

    ``table_ref`` must already be quoted as the engine wants it; it is inserted as is, so
    text that could end or comment out the statement is refused.
    """
    ref = table_ref.strip()
    if not ref or _UNSAFE.search(ref):
        raise UsageError(f"not a table reference: {table_ref!r}")
    return ORDERED_VIEW_SQL.format(table=ref)


def with_order(lf: pl.LazyFrame) -> pl.LazyFrame:
    """Add ``event_seq``, ``prev_event_type`` and ``millis_since_prev`` to a frame of
    events (needs ``user_id``, ``client_ts``, ``event_id``, ``event_type``), numbering
    within that frame. Rows come out sorted by ``(user_id, client_ts, event_id)``."""
    import polars as pl

    names = lf.collect_schema().names()
    missing = [c for c in (*ORDER_COLUMNS, "event_type") if c not in names]
    if missing:
        raise UsageError(f"the frame lacks the column(s) {', '.join(missing)}")
    user = pl.col("user_id")
    first = user.ne_missing(user.shift(1)).fill_null(True)
    millis = pl.col("client_ts").dt.epoch("us").floordiv(1000)
    return (
        lf.sort(list(ORDER_COLUMNS))
        .with_columns(_first=first, _ms=millis, _row=pl.int_range(pl.len(), dtype=pl.Int64))
        .with_columns(
            # position minus the position of the user's first row (global ops, no group-by)
            event_seq=pl.col("_row")
            - pl.when(pl.col("_first")).then(pl.col("_row")).forward_fill()
            + 1,
            prev_event_type=pl.when(pl.col("_first"))
            .then(None)
            .otherwise(pl.col("event_type").shift(1)),
            millis_since_prev=pl.when(pl.col("_first"))
            .then(None)
            .otherwise(pl.col("_ms") - pl.col("_ms").shift(1))
            .cast(pl.Int64),
        )
        .drop("_first", "_ms", "_row")
    )


def ordered(
    settings: Settings | None = None,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    snapshot_id: int | None = None,
) -> pl.LazyFrame:
    """The ordered view (see the module docstring for its columns and semantics) as a
    LazyFrame sorted by ``(user_id, client_ts, event_id)``.

    ``end`` is pushed into the scan (later events cannot change earlier positions);
    ``start`` is applied after numbering, so ``event_seq`` still counts the user's
    earlier events. To number within a range instead, use
    ``with_order(events(start=..., end=...))``.
    """
    import polars as pl

    start, end = check_range(start, end)
    table = open_events_table(settings)
    snap = check_snapshot(table, snapshot_id)
    if snap is None and table.current_snapshot() is not None:
        snap = table.current_snapshot().snapshot_id  # type: ignore[union-attr]
    lf = scan_table(table, snapshot_id=snap)
    if end is not None:
        lf = lf.filter(pl.col("client_ts") < end)
    lf = with_order(lf)
    if start is not None:
        lf = lf.filter(pl.col("client_ts") >= start)
    return lf
