"""The read API: Polars frames over the events table.

* :func:`events` — the table as a LazyFrame, client-time range and snapshot pushed down;
* :func:`ordered` — the ordered view (``event_seq``, ``prev_event_type``,
  ``millis_since_prev``), also as Trino/Athena SQL: :func:`ordered_view_sql`;
* :func:`snapshots`, :func:`current_snapshot_id` — what a reader can pin;
* :func:`lateness`, :func:`late_share` — late events and delivery delay;
* :func:`table_health_frames` — files per partition, file sizes, snapshot timeline;
* :func:`rejected` — the records refused by the writer, with reason and source.
"""

from lakehouse.read.delays import late_share, late_share_frame, lateness, lateness_frame
from lakehouse.read.history import current_snapshot_id, snapshots
from lakehouse.read.layout import TableHealthFrames, table_health_frames
from lakehouse.read.rejects import ReasonCount, rejected, rejected_frame, rejects_summary
from lakehouse.read.sequence import (
    ORDERED_VIEW_COLUMNS,
    ORDERED_VIEW_SQL,
    ordered,
    ordered_view_sql,
    with_order,
)
from lakehouse.read.source import events, open_events_table

__all__ = [
    "ORDERED_VIEW_COLUMNS",
    "ORDERED_VIEW_SQL",
    "ReasonCount",
    "TableHealthFrames",
    "current_snapshot_id",
    "events",
    "late_share",
    "late_share_frame",
    "lateness",
    "lateness_frame",
    "open_events_table",
    "ordered",
    "ordered_view_sql",
    "rejected",
    "rejected_frame",
    "rejects_summary",
    "snapshots",
    "table_health_frames",
    "with_order",
]
