"""Compaction's hot hours and health's maintenance lag follow the one closing rule of
``lakehouse.hours``: an hour is hot until ``hour end + hot window``, exactly then closed."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from pyiceberg.table import Table

from maintenance.health import maintenance_lag
from maintenance.plan import CompactionOptions, plan_compaction
from tests.maintenance.builders import append, make_rows, sort_rows

HOUR = datetime(2024, 5, 2, 10, tzinfo=UTC)
WINDOW = timedelta(minutes=45)
CLOSES = datetime(2024, 5, 2, 11, 45, tzinfo=UTC)  # hour end 11:00 + 45 min, by hand
US = timedelta(microseconds=1)


def test_hot_until_hour_end_plus_window_then_closed(sqlite_events: Table) -> None:
    table = sqlite_events
    for i in range(3):  # three small files in one hour: compaction's work once closed
        append(table, sort_rows(make_rows(random.Random(i), 5, HOUR, f"h{i}")))
    options = CompactionOptions(hot_window=WINDOW)
    for now, hot in ((CLOSES - US, True), (CLOSES, False), (CLOSES + US, False)):
        plan = plan_compaction(table, options, now=now)
        assert plan.hours_hot == (1 if hot else 0), now
        assert len(plan.groups) == (0 if hot else 1), now
        lag = maintenance_lag(table, options=options, now=now)
        assert (lag.small_files_hot, lag.small_files) == ((3, 0) if hot else (0, 3)), now
