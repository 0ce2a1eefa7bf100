"""The hour and lateness rule of ``lakehouse.hours`` at its boundary, against hand-computed
values, in each of its forms (scalar, microsecond arrays, Polars), and the modules that use
it (writer's late mask, readers' lateness, compaction's hot hours, maintenance lag)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from lakehouse import hours
from lakehouse.read.delays import lateness_frame
from writers.dedupe import late_mask

US = timedelta(microseconds=1)
# 2024-05-01T07:00Z is 476,263 hours after the epoch (19,844 days * 24 + 7; by hand:
# 54 * 365 + 13 leap days + 121 days of 2024 = 19,844).
HOUR_7 = 476_263
START = datetime(2024, 5, 1, 7, tzinfo=UTC)
END = datetime(2024, 5, 1, 8, tzinfo=UTC)
START_US = 1_714_546_800_000_000  # START as epoch microseconds, computed by hand
LATENESS = timedelta(minutes=30)
BOUNDARY = datetime(2024, 5, 1, 8, 30, tzinfo=UTC)  # hour end + lateness


def test_hour_of_start_end_and_label_by_hand() -> None:
    assert hours.hour_of(START) == HOUR_7
    assert hours.hour_of(START + timedelta(minutes=59, seconds=59, microseconds=999_999)) == HOUR_7
    assert hours.hour_of(START - US) == HOUR_7 - 1
    assert hours.hour_of(END) == HOUR_7 + 1
    assert hours.hour_of(datetime(2024, 5, 1, 7, 30)) == HOUR_7  # naive: read as UTC
    assert hours.hour_of(datetime(2024, 5, 1, 9, 30, tzinfo=timedelta_tz(+2))) == HOUR_7
    assert hours.hour_start(HOUR_7) == START
    assert hours.hour_end(HOUR_7) == END
    assert hours.hour_of(datetime(1969, 12, 31, 23, 59, tzinfo=UTC)) == -1
    assert int(START.timestamp()) * 1_000_000 == START_US


def timedelta_tz(offset_hours: int) -> object:
    from datetime import timezone

    return timezone(timedelta(hours=offset_hours))


def test_one_hour_label_for_ordinals_and_datetimes() -> None:
    assert hours.hour_label(HOUR_7) == "2024-05-01T07"
    assert hours.hour_label(START) == "2024-05-01T07"
    assert hours.hour_label(START + timedelta(minutes=59)) == "2024-05-01T07"
    assert hours.hour_label(np.int64(HOUR_7)) == "2024-05-01T07"  # type: ignore[arg-type]
    assert hours.hour_label(0) == "1970-01-01T00"
    assert hours.parse_hour_label("2024-05-01T07") == HOUR_7


@pytest.mark.parametrize(
    ("received", "late"),
    [
        (BOUNDARY - US, False),  # one microsecond before hour end + lateness: on time
        (BOUNDARY, True),  # exactly at it: late (the hour had closed)
        (BOUNDARY + US, True),
        (END, False),
        (START, False),
    ],
)
def test_lateness_boundary_scalar(received: datetime, late: bool) -> None:
    event = START + timedelta(minutes=12)
    assert hours.is_late(event, received, LATENESS) is late
    assert hours.is_closed(HOUR_7, LATENESS, received) is late
    assert hours.is_hot(HOUR_7, LATENESS, received) is (not late)


def test_zero_lateness_closes_at_the_hour_end() -> None:
    assert hours.is_late(START, END, timedelta(0)) is True
    assert hours.is_late(START, END - US, timedelta(0)) is False
    assert hours.is_late(END - US, END, timedelta(0)) is True


def _boundary_rows() -> tuple[list[datetime], list[datetime], list[bool]]:
    client = [START, START + timedelta(minutes=59), END - US, START, START, START, END]
    server = [
        BOUNDARY - US,
        BOUNDARY,
        BOUNDARY + US,
        START,
        BOUNDARY + timedelta(days=3),
        BOUNDARY - timedelta(minutes=1),
        BOUNDARY,  # the next hour: closes at 09:30
    ]
    expected = [False, True, True, False, True, False, False]
    return client, server, expected


def test_lateness_boundary_micros_and_writer_mask() -> None:
    client, server, expected = _boundary_rows()
    client_us = np.array([int(c.timestamp() * 1_000_000) for c in client], dtype=np.int64)
    server_us = np.array([int(s.timestamp() * 1_000_000) for s in server], dtype=np.int64)
    assert client_us[0] == START_US
    assert hours.late_micros(client_us, server_us, LATENESS).tolist() == expected
    ts = pa.timestamp("us", tz="UTC")
    batch = pa.table({"client_ts": pa.array(client, ts), "server_ts": pa.array(server, ts)})
    assert late_mask(batch, LATENESS).to_pylist() == expected


def test_lateness_boundary_polars_and_reader() -> None:
    client, server, expected = _boundary_rows()
    frame = pl.DataFrame(
        {"client_ts": client, "server_ts": server},
        schema={"client_ts": pl.Datetime("us", "UTC"), "server_ts": pl.Datetime("us", "UTC")},
    )
    flags = frame.select(hours.late_expr(pl.col("client_ts"), pl.col("server_ts"), LATENESS))
    assert flags.to_series().to_list() == expected
    per_hour = lateness_frame(frame.lazy(), allowed_lateness=LATENESS).collect()
    assert per_hour["hour"].to_list() == [START, END]
    assert per_hour["late_events"].to_list() == [3, 0]  # expected[:6] has three True
    assert per_hour["events"].to_list() == [6, 1]
