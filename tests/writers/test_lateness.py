"""The lateness bound set from the environment (``LAKEHOUSE_ALLOWED_LATENESS``), hit
exactly at its boundary: an event received at ``hour end + lateness`` is late, one
received a microsecond earlier is on time. Expected values are worked out by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from catalog import open_catalog
from lakehouse import hours
from lakehouse import schema as spec
from lakehouse.settings import Settings
from lakehouse.tables import load_tables
from tests.writers.events import BASE, event, read_file
from writers import EventWriter
from writers.dedupe import late_mask

US = timedelta(microseconds=1)
CLIENT = BASE + timedelta(hours=3, minutes=10)  # in hour 03:00-04:00 of 2024-05-01
BOUNDARY = BASE + timedelta(hours=4, minutes=20)  # hour end 04:00 + 20 minutes


def _at(i: int, server: datetime) -> dict[str, object]:
    row = event(i, minutes=190)  # CLIENT
    row["server_ts"] = server.isoformat().replace("+00:00", "Z")
    return row


def test_lateness_from_the_environment_is_late_exactly_at_the_boundary(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAKEHOUSE_ALLOWED_LATENESS", "20m")
    settings = Settings.from_env()
    assert settings.allowed_lateness == timedelta(minutes=20)
    rows = [
        _at(1, BOUNDARY - US),  # on time: 1 us before the hour closed
        _at(2, BOUNDARY),  # late: exactly at the boundary
        _at(3, BOUNDARY + US),  # late
        _at(4, BASE + timedelta(hours=4)),  # on time: at the hour's end, inside the bound
    ]
    with EventWriter(settings) as writer:
        writer.write(rows)
    assert (writer.totals.late_records, writer.totals.on_time_records) == (2, 2)
    assert writer.totals.late_hours == ("2024-05-01T03",)
    events = load_tables(open_catalog(settings), settings.table).events
    by_kind = {
        s.summary.additional_properties[spec.SUMMARY_KIND]: s for s in events.metadata.snapshots
    }
    late = by_kind["late"]
    assert late.summary.additional_properties[spec.SUMMARY_LATE_HOURS] == "2024-05-01T03"
    files = [
        e["data_file"]["file_path"]
        for e in events.inspect.entries(snapshot_id=late.snapshot_id).to_pylist()
        if e["status"] == 1 and e["snapshot_id"] == late.snapshot_id
    ]
    late_ids = sorted(i for f in files for i in read_file(f).column("event_id").to_pylist())
    assert late_ids == ["e000002", "e000003"]


def test_default_lateness_keeps_them_all_on_time(home: Path) -> None:
    settings = Settings.from_env()
    assert settings.allowed_lateness == timedelta(hours=1)
    with EventWriter(settings) as writer:
        writer.write([_at(1, BOUNDARY), _at(2, BOUNDARY + US)])
    assert (writer.totals.late_records, writer.totals.on_time_records) == (0, 2)


@pytest.mark.parametrize(
    ("lateness", "server", "late"),
    [
        ("20m", BOUNDARY - US, False),
        ("20m", BOUNDARY, True),
        ("0s", BASE + timedelta(hours=4) - US, False),
        ("0s", BASE + timedelta(hours=4), True),
        ("2h", BASE + timedelta(hours=6), True),
        ("2h", BASE + timedelta(hours=6) - US, False),
    ],
)
def test_late_mask_at_the_boundary(lateness: str, server: datetime, late: bool) -> None:
    settings = Settings.from_env({"LAKEHOUSE_ALLOWED_LATENESS": lateness})
    ts = pa.timestamp("us", tz="UTC")
    batch = pa.table({"client_ts": pa.array([CLIENT], ts), "server_ts": pa.array([server], ts)})
    assert late_mask(batch, settings.allowed_lateness).to_pylist() == [late]


def test_micros_of_is_a_whole_number_of_microseconds() -> None:
    value = hours.micros_of(timedelta(minutes=20))
    assert value == 1_200_000_000 and type(value) is int
    assert hours.micros_of(timedelta(0)) == 0 and type(hours.micros_of(timedelta(0))) is int


def test_closing_times_are_computed_in_utc() -> None:
    # 2024-05-01T03:10+02:00 is 01:10 UTC: its hour closes at 02:00 UTC + lateness
    local = datetime(2024, 5, 1, 3, 10, tzinfo=UTC) - timedelta(hours=2)
    assert hours.is_late(local, datetime(2024, 5, 1, 2, 20, tzinfo=UTC), timedelta(minutes=20))
    assert not hours.is_late(
        local, datetime(2024, 5, 1, 2, 20, tzinfo=UTC) - US, timedelta(minutes=20)
    )
