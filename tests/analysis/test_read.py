"""The read API on real tables written by the writer, on SQLite and PostgreSQL catalogs."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import datetime, timedelta

import polars as pl
import pytest

import lakehouse
from lakehouse.errors import ConfigError, UsageError
from lakehouse.settings import Settings
from tests.analysis.conftest import BASE, ev, write

H = timedelta(hours=1)


def _ids(lf: pl.LazyFrame) -> list[str]:
    return sorted(lf.select("event_id").collect().to_series().to_list())


def test_events_reads_every_row_and_filters_client_time(settings: Settings) -> None:
    rows = [ev(f"e{i:03d}", f"u{i % 4}", "view", i * 10 * timedelta(minutes=1)) for i in range(60)]
    result = write(settings, rows)
    assert result.records_written == 60

    everything = lakehouse.events(settings).collect()
    assert everything.height == 60
    assert sorted(everything["event_id"]) == [r["event_id"] for r in rows]
    assert everything.schema["client_ts"] == pl.Datetime("us", "UTC")

    # [start, end): e006 is exactly at start (kept), e012 exactly at end (left out)
    start, end = BASE + H, BASE + 2 * H
    ranged = lakehouse.events(settings, start=start, end=end)
    assert _ids(ranged) == [f"e{i:03d}" for i in range(6, 12)]
    # naive datetimes are UTC
    naive = lakehouse.events(
        settings, start=start.replace(tzinfo=None), end=end.replace(tzinfo=None)
    )
    assert _ids(naive) == _ids(ranged)
    assert _ids(lakehouse.events(settings, end=BASE + H)) == [f"e{i:03d}" for i in range(6)]


def test_time_range_is_pushed_into_the_scan(sqlite_settings: Settings) -> None:
    write(sqlite_settings, [ev(f"e{i}", "u", "view", i * H) for i in range(10)])
    plan = lakehouse.events(sqlite_settings, start=BASE + 3 * H, end=BASE + 5 * H).explain()
    # one file per hour: only the two hours in range are listed for reading
    scanned = plan.split("Parquet SCAN [", 1)[1].split("]", 1)[0]
    assert re.findall(r"client_ts_hour=2024-05-01-(\d\d)/", scanned) == ["03", "04"]
    assert "other source" not in scanned


def test_pinned_snapshot_keeps_returning_the_older_rows(settings: Settings) -> None:
    write(settings, [ev(f"a{i}", "u1", "view", i * timedelta(minutes=5)) for i in range(5)])
    pinned = lakehouse.current_snapshot_id(settings)
    assert pinned is not None
    write(settings, [ev(f"b{i}", "u2", "view", i * timedelta(minutes=5)) for i in range(3)])

    assert _ids(lakehouse.events(settings, snapshot_id=pinned)) == [f"a{i}" for i in range(5)]
    assert len(_ids(lakehouse.events(settings))) == 8
    snaps = lakehouse.snapshots(settings)
    assert snaps.height == 2
    assert snaps["snapshot_id"][0] == pinned
    assert snaps["is_current"].to_list() == [False, True]
    assert snaps["snapshot_id"][1] == lakehouse.current_snapshot_id(settings)
    assert snaps["parent_id"][1] == pinned
    assert snaps["added_records"].to_list() == [5, 3]
    assert snaps["total_records"].to_list() == [5, 8]
    assert snaps["kind"].to_list() == ["on-time", "on-time"]


def test_unknown_snapshot_and_bad_ranges_are_usage_errors(sqlite_settings: Settings) -> None:
    write(sqlite_settings, [ev("e1", "u", "view", timedelta(0))])
    with pytest.raises(UsageError, match="snapshot 123 does not exist"):
        lakehouse.events(sqlite_settings, snapshot_id=123)
    with pytest.raises(UsageError, match="must be before"):
        lakehouse.events(sqlite_settings, start=BASE + H, end=BASE)


def test_missing_table_says_to_run_init(sqlite_settings: Settings) -> None:
    with pytest.raises(ConfigError, match="lakehouse init"):
        lakehouse.events(sqlite_settings)


def test_empty_table_reads_as_an_empty_frame(sqlite_settings: Settings) -> None:
    from catalog import open_catalog
    from lakehouse.tables import ensure_tables

    ensure_tables(open_catalog(sqlite_settings), sqlite_settings.table)
    frame = lakehouse.events(sqlite_settings).collect()
    assert frame.height == 0
    assert {"event_id", "user_id", "client_ts"} <= set(frame.columns)
    assert lakehouse.current_snapshot_id(sqlite_settings) is None
    assert lakehouse.snapshots(sqlite_settings).height == 0
    assert lakehouse.ordered(sqlite_settings).collect().height == 0


def test_late_snapshots_lateness_and_health_frames(settings: Settings) -> None:
    on_time = [
        ev(f"o{i}", f"u{i % 3}", "view", i * timedelta(minutes=10), platform="ios")
        for i in range(12)
    ]  # hours 0 and 1, delay 5 s
    late = [
        ev(
            f"l{i}",
            "u9",
            "view",
            timedelta(minutes=5 * i),
            delay=timedelta(hours=3),
            platform="android",
        )
        for i in range(4)
    ]  # hour 0, received 3 h later: late with the default 1 h allowed lateness
    write(settings, on_time + late)

    snaps = lakehouse.snapshots(settings)
    assert sorted(snaps["kind"].to_list()) == ["late", "on-time"]
    late_row = snaps.filter(pl.col("kind") == "late").row(0, named=True)
    assert late_row["added_records"] == 4
    assert late_row["late_hours"] == ["2024-05-01T00"]
    assert late_row["category"] == "late"

    per_hour = lakehouse.lateness(settings)
    assert per_hour["hour"].to_list() == [BASE, BASE + H]
    assert per_hour["events"].to_list() == [10, 6]
    assert per_hour["late_events"].to_list() == [4, 0]
    assert per_hour["late_share"].to_list() == pytest.approx([0.4, 0.0])
    assert per_hour["delay_p50_s"].to_list() == pytest.approx([5.0, 5.0])
    # hour 0: six delays of 5 s and four of 3 h; linear interpolation between ranks
    assert per_hour["delay_p90_s"].to_list() == pytest.approx([10800.0, 5.0])
    assert per_hour["delay_p99_s"].to_list() == pytest.approx([10800.0, 5.0])

    by_platform = lakehouse.late_share("platform", settings)
    assert by_platform.select("platform", "events", "late_events", "late_share").rows() == [
        ("ios", 12, 0, 0.0),
        ("android", 4, 4, 1.0),
    ]

    frames = lakehouse.table_health_frames(settings)
    parts = frames.files_per_partition
    assert parts["partition_hour"].to_list() == [BASE, BASE + H]
    assert parts["records"].to_list() == [10, 6]
    assert parts["file_count"].to_list() == [2, 1]  # hour 0: an on-time and a late file
    assert frames.file_sizes.height == 3
    assert frames.file_sizes["records"].sum() == 16
    assert frames.file_sizes["bytes"].to_list() == sorted(frames.file_sizes["bytes"].to_list())
    assert parts["bytes"].sum() == frames.file_sizes["bytes"].sum()
    assert sorted(frames.snapshots["category"].to_list()) == ["late", "on-time"]
    assert frames.snapshot_id == lakehouse.current_snapshot_id(settings)
    as_dict = frames.to_dict()
    assert len(as_dict["file_sizes"]) == 3 and as_dict["snapshot_id"] == frames.snapshot_id


def test_import_is_lazy() -> None:
    code = (
        "import sys, lakehouse; "
        "heavy = [m for m in ('polars', 'pyiceberg', 'pyarrow') if m in sys.modules]; "
        "assert not heavy, heavy; "
        "f = lakehouse.funnel; assert 'lakehouse.funnels' in sys.modules; "
        "assert callable(lakehouse.events) and 'events' in dir(lakehouse); print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
    with pytest.raises(AttributeError):
        lakehouse.no_such_name  # noqa: B018


def test_naive_and_aware_datetimes_compare_equal() -> None:
    from lakehouse.read.source import as_utc

    aware = datetime.fromisoformat("2024-05-01T12:00:00+02:00")
    assert as_utc(aware, "x") == BASE + 10 * H
    assert as_utc(datetime(2024, 5, 1, 10), "x") == BASE + 10 * H


def test_the_on_time_half_of_a_batch_is_marked_incomplete(sqlite_settings) -> None:  # type: ignore[no-untyped-def]
    from datetime import timedelta

    from lakehouse import snapshots
    from tests.writers.events import event
    from writers import EventWriter

    with EventWriter(sqlite_settings) as writer:
        writer.write([event(1), event(2, delay=timedelta(days=2))])  # one on-time, one late
    with EventWriter(sqlite_settings) as writer:
        writer.write([event(3)])  # on-time only
    frame = snapshots(sqlite_settings)
    assert frame["kind"].to_list() == ["on-time", "late", "on-time"]
    assert frame["complete"].to_list() == [False, True, True]
