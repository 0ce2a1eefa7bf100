"""Hours and lateness: the one definition of the events table's time contract.

The events table is partitioned by ``hour(client_ts)`` (UTC). An hour is named by its
*ordinal*, the hours since the epoch (Iceberg's ``hour`` transform value), or by its
label ``2024-05-01T07`` (the form snapshot summaries carry in ``lakehouse.late-hours``).

One rule decides both "late" and "hot": an hour is **closed** at time ``t`` when

    hour_end + window <= t

* an event is **late** when its hour was closed when it was received:
  ``hour_end(client_ts) + allowed_lateness <= server_ts`` (exactly at the boundary
  counts as late);
* an hour is **hot** (still receiving on-time data, left alone by compaction) while it
  is not closed at ``now``: ``hour_end + hot_window > now``.

Writers, readers, maintenance and health all use these functions, so the boundary is
the same everywhere. Forms for scalars (:class:`~datetime.datetime`), integer
microsecond arrays (numpy) and Polars expressions are provided.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
HOUR_US = 3_600_000_000
LABEL_FORMAT = "%Y-%m-%dT%H"


# -- scalars ----------------------------------------------------------------------------


def hour_of(ts: datetime) -> int:
    """The hour ordinal (hours since the epoch, UTC) that ``ts`` falls in. A naive
    datetime is read as UTC."""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return int((ts - EPOCH) // HOUR)


def hour_start(ordinal: int) -> datetime:
    """The UTC start of an ``hour(client_ts)`` partition value."""
    return EPOCH + ordinal * HOUR


def hour_end(ordinal: int) -> datetime:
    """The UTC end (exclusive) of an hour: the start of the next one."""
    return hour_start(ordinal + 1)


def hour_label(hour: int | datetime) -> str:
    """``2024-05-01T07``: the label of an hour, given by its ordinal or by any time in it."""
    ordinal = hour_of(hour) if isinstance(hour, datetime) else int(hour)
    return hour_start(ordinal).strftime(LABEL_FORMAT)


def parse_hour_label(label: str) -> int:
    """The ordinal of an hour label (the inverse of :func:`hour_label`)."""
    return hour_of(datetime.strptime(label, LABEL_FORMAT).replace(tzinfo=UTC))


def is_closed(hour: int, window: timedelta, at: datetime) -> bool:
    """Whether the hour is closed at ``at``: ``hour_end + window <= at``."""
    return hour_end(hour) + window <= at


def is_hot(hour: int, window: timedelta, now: datetime) -> bool:
    """Whether the hour is still hot at ``now`` (not closed): ``hour_end + window > now``."""
    return not is_closed(hour, window, now)


def is_late(client_ts: datetime, server_ts: datetime, allowed_lateness: timedelta) -> bool:
    """Whether an event is late: its hour was closed when it was received."""
    return is_closed(hour_of(client_ts), allowed_lateness, server_ts)


# -- integer microseconds (numpy arrays) ------------------------------------------------


def micros_of(window: timedelta) -> int:
    """A duration in whole microseconds."""
    return window // timedelta(microseconds=1)


def hours_of_micros(ts_us: np.ndarray) -> np.ndarray:
    """Hour ordinals of timestamps given as int64 microseconds since the epoch."""
    return ts_us // HOUR_US


def late_micros(
    client_us: np.ndarray, server_us: np.ndarray, allowed_lateness: timedelta
) -> np.ndarray:
    """The lateness rule over int64 microsecond arrays: True where
    ``hour_end(client) + allowed_lateness <= server``."""
    closes = (hours_of_micros(client_us) + 1) * HOUR_US + micros_of(allowed_lateness)
    result: np.ndarray = closes <= server_us
    return result


# -- Polars expressions -----------------------------------------------------------------


def hour_expr(client_ts: pl.Expr) -> pl.Expr:
    """The hour start (UTC timestamp) of a timestamp expression."""
    return client_ts.dt.truncate("1h")


def late_expr(client_ts: pl.Expr, server_ts: pl.Expr, allowed_lateness: timedelta) -> pl.Expr:
    """The lateness rule as a Polars expression (Boolean)."""
    return (hour_expr(client_ts) + HOUR + allowed_lateness) <= server_ts
