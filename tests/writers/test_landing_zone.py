"""Real landing zones on local files: Firehose names, hostile files among good ones,
receipt times from keys, symbolic links, files that change, selection globs."""

from __future__ import annotations

import gzip
import json
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from catalog import open_catalog
from lakehouse.settings import Settings
from lakehouse.tables import load_tables
from tests.writers.events import event, rows
from tests.writers.landing_zone import (
    FIREHOSE_TIME,
    firehose_key,
    hostile_zone,
    lines,
    run_cli,
    run_measured,
)
from writers import ingest
from writers.sources import reading

MAX_LINE = 1 << 20


def local_put(root: Path):  # type: ignore[no-untyped-def]
    def put(key: str, data: bytes) -> None:
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    return put


def landed(settings: Settings) -> tuple[list[dict], list[dict], list[dict]]:
    t = load_tables(open_catalog(settings), settings.table)
    return rows(t.events).to_pylist(), rows(t.rejected).to_pylist(), rows(t.ingested).to_pylist()


def test_a_childs_peak_memory_is_its_own(tmp_path: Path) -> None:
    """The memory bound below is the CLI's own: a test process holding 600 MiB does not
    show in a small child, and a child that holds 300 MiB shows it."""
    held = b"\x01" * (600 << 20)  # every page touched, so resident
    code, _, err, small = run_measured("pass", [], {}, tmp_path)
    assert code == 0, err
    assert 0 < small < 100 << 20, f"a child that does nothing peaked at {small >> 20} MiB"
    code, _, err, big = run_measured("b = b'\\x01' * (300 << 20)", [], {}, tmp_path)
    assert code == 0, err
    assert big >= 300 << 20, f"a child holding 300 MiB peaked at {big >> 20} MiB"
    code, _, _, killed = run_measured("import os; os.kill(os.getpid(), 9)", [], {}, tmp_path)
    assert (code, killed) == (-9, -1)
    assert len(held) == 600 << 20


def test_hostile_files_among_good_ones_are_rejects_and_block_nothing(
    home: Path, tmp_path: Path
) -> None:
    zone_root = tmp_path / "zone"
    zone = hostile_zone(local_put(zone_root), max_line=MAX_LINE)
    env = {"LAKEHOUSE_MAX_FILE_BYTES": str(32 << 20), "LAKEHOUSE_MAX_LINE_BYTES": str(MAX_LINE)}
    code, out, err, peak = run_cli(["ingest", str(zone_root), "--create", "--json"], env)
    assert code == 1, err
    assert "Traceback" not in err and "Traceback" not in out
    assert 0 < peak < 1 << 30, f"peak RSS {peak / 2**20:.0f} MiB"
    summary = json.loads(out)
    events, rejected, ledger = landed(Settings.from_env())
    ids = [e["event_id"] for e in events]
    assert len(ids) == len(set(ids)) and set(ids) == zone.good
    for key, words in zone.hostile.items():
        uri = f"file://{zone_root}/{key}"
        reasons = [r["reason"] for r in rejected if r["source"] == uri]
        assert any(words in reason for reason in reasons), (key, reasons)
    whole = {r["source"] for r in rejected if r["line"] is None}
    for key in ("bomb.gz", "README.txt", "picture.png"):  # the whole file is the reject
        assert f"file://{zone_root}/2026/12/03/07/{key}" in whole
    line_of = {r["source"].rsplit("/", 1)[-1]: r["line"] for r in rejected if r["line"]}
    assert line_of == {"long-line.ndjson": 3, "bad-utf8.ndjson": 4, "reserved.ndjson": 4}
    listed = {r["source"] for r in ledger}
    assert len(listed) == 4 + len(zone.hostile)  # every landing file, not the markers
    assert summary["records_rejected"] == len(rejected)
    again, _, _, _ = run_cli(["ingest", str(zone_root), "--json"], env)
    assert again == 0  # nothing left: the hostile files do not block later runs


def test_an_unreadable_file_is_a_reject_and_a_storage_outage_waits_for_the_next_run(
    sqlite_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    zone = tmp_path / "zone"
    put = local_put(zone)
    expected = set()
    for n, name in enumerate(["a.ndjson", "locked.ndjson", "flaky.ndjson", "z.ndjson"]):
        batch = [event(n * 10 + i) for i in range(10)]
        expected.update(e["event_id"] for e in batch)
        put(name, lines(batch))
    real = reading._read

    def faulty(filesystem, source):  # type: ignore[no-untyped-def]
        if source.path.endswith("locked.ndjson"):
            raise reading.FileRejected("unreadable: Permission denied")
        if source.path.endswith("flaky.ndjson"):
            from lakehouse.errors import StorageError

            raise StorageError("cannot read flaky.ndjson: connection reset")
        return real(filesystem, source)

    monkeypatch.setenv("LAKEHOUSE_STORAGE_RETRIES", "2")
    monkeypatch.setattr(reading, "_read", faulty)
    first = ingest([str(zone)], sqlite_settings)
    assert (first.files, first.files_deferred) == (3, 1)
    events, rejected, ledger = landed(sqlite_settings)
    got = {e["event_id"] for e in events}
    assert got == expected - {f"e{i:06d}" for i in range(10, 30)}
    assert [(r["source"].rsplit("/", 1)[-1], r["reason"]) for r in rejected] == [
        ("locked.ndjson", "unreadable: Permission denied")
    ]
    assert sorted(r["source"].rsplit("/", 1)[-1] for r in ledger) == [
        "a.ndjson",
        "locked.ndjson",
        "z.ndjson",
    ]
    monkeypatch.setattr(reading, "_read", real)  # the outage is over
    second = ingest([str(zone)], sqlite_settings)
    assert (second.files, second.files_deferred) == (1, 0)
    events, _, _ = landed(sqlite_settings)
    ids = [e["event_id"] for e in events]
    assert len(ids) == len(set(ids)) and set(ids) == expected - {f"e{i:06d}" for i in range(10, 20)}


def test_cli_exit_75_when_a_file_is_left_for_the_next_run(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from lakehouse.cli.main import cli
    from lakehouse.errors import StorageError

    zone = tmp_path / "zone"
    local_put(zone)("a.ndjson", lines([event(1)]))
    local_put(zone)("b.ndjson", lines([event(2)]))
    real = reading._read

    def flaky(filesystem, source):  # type: ignore[no-untyped-def]
        if source.path.endswith("b.ndjson"):
            raise StorageError("cannot read b.ndjson: 503 Slow Down")
        return real(filesystem, source)

    monkeypatch.setenv("LAKEHOUSE_STORAGE_RETRIES", "1")
    monkeypatch.setattr(reading, "_read", flaky)
    result = CliRunner().invoke(cli, ["ingest", str(zone), "--create", "--json"])
    assert result.exit_code == 75, result.output
    assert json.loads(result.stdout)["files_deferred"] == 1


def _no_server_ts(e: dict) -> dict:
    return {k: v for k, v in e.items() if k != "server_ts"}


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_a_firehose_zone_copied_today_keeps_its_original_lateness(
    sqlite_settings: Settings, tmp_path: Path, gz: bool
) -> None:
    """Records without server_ts; the objects' times say when they arrived. The copy's
    modification times are today's, so lateness can only come from the keys."""
    zone = tmp_path / "events"
    put = local_put(zone)
    late_ids, on_time_ids = set(), set()
    for n in range(3):
        at = FIREHOSE_TIME + timedelta(hours=n, minutes=5 * n)
        on_time = [event(100 * n + i, minutes=0) for i in range(5)]
        for e, k in zip(on_time, range(5), strict=True):  # a few minutes before arrival
            e["client_ts"] = (at - timedelta(minutes=k + 1)).isoformat().replace("+00:00", "Z")
        late = [event(100 * n + 50 + i, minutes=0) for i in range(n)]
        for e in late:  # two hours and more before arrival: its hour had closed
            e["client_ts"] = (at - timedelta(hours=3)).isoformat().replace("+00:00", "Z")
        on_time_ids.update(e["event_id"] for e in on_time)
        late_ids.update(e["event_id"] for e in late)
        body = lines([_no_server_ts(e) for e in on_time + late])
        put(firehose_key(at, n, gz), gzip.compress(body) if gz else body)
    result = ingest([str(zone)], sqlite_settings)
    assert result.records_rejected == 0
    assert result.late_records == len(late_ids) == 3
    events, _, _ = landed(sqlite_settings)
    assert {e["event_id"] for e in events} == late_ids | on_time_ids
    arrival = {n: FIREHOSE_TIME + timedelta(hours=n, minutes=5 * n) for n in range(3)}
    for e in events:
        n = int(e["event_id"][1:]) // 100
        assert e["server_ts"] == arrival[n]  # the second in the object name


def test_receipt_time_modes_and_a_restored_file_with_old_times(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    zone = tmp_path / "zone"
    hour_dir = zone / "2024" / "05" / "01" / "10"
    hour_dir.mkdir(parents=True)
    e = _no_server_ts(event(1, minutes=10 * 60 + 20))  # 10:20, in the key's hour
    (hour_dir / "part.json").write_text(json.dumps(e) + "\n")
    restored = zone / "restored.ndjson"  # a file restored with `cp -p`: an old time
    r = _no_server_ts(event(2, minutes=150))  # 02:30, hours after the file's time (00:00)
    restored.write_text(json.dumps(r) + "\n")
    old = datetime(2024, 5, 1, tzinfo=UTC).timestamp()
    os.utime(restored, (old, old))
    future = zone / "future.ndjson"  # a modification time in the future is clamped
    f = _no_server_ts(event(3, minutes=40))
    future.write_text(json.dumps(f) + "\n")
    ahead = time.time() + 10 * 86400
    os.utime(future, (ahead, ahead))
    before = datetime.now(UTC)
    result = ingest([str(zone)], sqlite_settings, look_back=None)
    assert result.records_rejected == 0, landed(sqlite_settings)[1]
    events, _, _ = landed(sqlite_settings)
    got = {x["event_id"]: x["server_ts"] for x in events}
    assert got["e000001"] == datetime(2024, 5, 1, 10, tzinfo=UTC)  # the key's hour
    assert got["e000002"] == datetime(2024, 5, 1, tzinfo=UTC)  # the old time, accepted
    assert before <= got["e000003"] <= datetime.now(UTC)  # no later than now


def test_receipt_time_now_rejects_nothing_and_stamps_the_run(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    zone = tmp_path / "zone" / "2024" / "05" / "01" / "10"
    zone.mkdir(parents=True)
    (zone / "a.json").write_text(json.dumps(_no_server_ts(event(1))) + "\n")
    before = datetime.now(UTC)
    ingest([str(tmp_path / "zone")], sqlite_settings, receipt_time="now")
    events, _, _ = landed(sqlite_settings)
    assert before <= events[0]["server_ts"] <= datetime.now(UTC)


def test_symbolic_links_stay_inside_the_root_loops_end_and_a_file_lands_once(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    zone = tmp_path / "zone"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.ndjson").write_text(json.dumps(event(900)) + "\n")
    (zone / "a").mkdir(parents=True)
    (zone / "a" / "x.ndjson").write_text(json.dumps(event(1)) + "\n")
    (zone / "b.ndjson").write_text(json.dumps(event(2)) + "\n")
    (zone / "a" / "loop").symlink_to(zone)  # a loop back to the root
    (zone / "alias.ndjson").symlink_to(zone / "a" / "x.ndjson")  # a second path
    (zone / "leak.ndjson").symlink_to(outside / "secret.ndjson")  # out of the zone
    (zone / "out").symlink_to(outside)  # a folder out of the zone
    (zone / "gone.ndjson").symlink_to(tmp_path / "missing")
    result = ingest([str(zone)], sqlite_settings)
    events, rejected, ledger = landed(sqlite_settings)
    assert sorted(e["event_id"] for e in events) == ["e000001", "e000002"]
    assert rejected == []
    assert sorted(r["source"][len(f"file://{zone}/") :] for r in ledger) == [
        "a/x.ndjson",
        "b.ndjson",
    ]
    notes = " | ".join(result.warnings)
    assert "outside the landing root" in notes and "second path" in notes


def test_include_exclude_and_a_run_that_takes_nothing_says_why(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    zone = tmp_path / "zone"
    put = local_put(zone)
    put("keep/a.ndjson", lines([event(1)]))
    put("keep/b.log", lines([event(2)]))
    put("drop/c.ndjson", lines([event(3)]))
    result = ingest([str(zone)], sqlite_settings, include=["*.ndjson"], exclude=["drop/*"])
    events, _, _ = landed(sqlite_settings)
    assert [e["event_id"] for e in events] == ["e000001"]
    assert result.files == 1
    empty = tmp_path / "empty"
    put2 = local_put(empty)
    put2("_SUCCESS", b"")
    put2(".part.tmp", b"x")
    put2("x/y.ndjson.tmp", b"x")
    nothing = ingest([str(empty)], sqlite_settings)
    assert nothing.files == 0
    assert any("found 3 file(s) but took none" in w and "hidden" in w for w in nothing.warnings)


def test_a_file_that_grows_or_is_rewritten_is_read_again_and_each_event_lands_once(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    zone = tmp_path / "zone"
    zone.mkdir()
    path = zone / "drop.ndjson"
    first = [event(i) for i in range(5)]
    partial = json.dumps(event(5))
    path.write_bytes(lines(first) + partial[:20].encode())  # a producer still writing
    r1 = ingest([str(zone)], sqlite_settings)
    assert (r1.records_written, r1.records_rejected) == (5, 0)  # the last line waits
    assert any("waits for the next run" in w for w in r1.warnings)
    path.write_bytes(lines(first) + partial.encode() + b"\n" + lines([event(6)]))
    r2 = ingest([str(zone)], sqlite_settings)
    assert r2.records_rejected == 0 and any("grew since" in w for w in r2.warnings)
    assert (r2.files_grown, r2.bytes_read) == (1, path.stat().st_size - len(lines(first)))
    events, rejected, _ = landed(sqlite_settings)
    ids = [e["event_id"] for e in events]
    assert sorted(ids) == [f"e{i:06d}" for i in range(7)] and rejected == []
    path.write_bytes(lines([event(i) for i in range(3)] + [event(7)]))  # rewritten, shorter
    r3 = ingest([str(zone)], sqlite_settings)
    assert r3.files == 1 and r3.records_written == 1 and r3.duplicates_dropped == 3
    assert r3.files_reread == 1 and any("changed since" in w for w in r3.warnings)
    events, _, _ = landed(sqlite_settings)
    assert sorted(e["event_id"] for e in events) == [f"e{i:06d}" for i in range(8)]
    r4 = ingest([str(zone)], sqlite_settings)
    assert (r4.files, r4.files_skipped) == (0, 1)


def test_an_incomplete_last_line_is_taken_once_the_file_is_quiet(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    zone = tmp_path / "zone"
    zone.mkdir()
    path = zone / "drop.ndjson"
    path.write_bytes(lines([event(1)]) + b'{"event_id": "cut')
    ingest([str(zone)], sqlite_settings)
    _, rejected, _ = landed(sqlite_settings)
    assert rejected == []
    old = time.time() - 3600
    os.utime(path, (old, old))  # quiet for an hour: the writer is gone
    ingest([str(zone)], sqlite_settings)
    events, rejected, _ = landed(sqlite_settings)
    assert [e["event_id"] for e in events] == ["e000001"]
    assert [(r["line"], r["raw"]) for r in rejected] == [(2, '{"event_id": "cut')]


def test_cli_options_reach_the_listing(home: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from lakehouse.cli.main import cli

    zone = tmp_path / "zone"
    put = local_put(zone)
    put("2024/05/01/10/a.ndjson", lines([_no_server_ts(event(1, minutes=600))]))
    put("2024/05/01/10/b.log", lines([event(2)]))
    runner = CliRunner()
    bad = runner.invoke(cli, ["ingest", str(zone), "--create", "--look-back", "soon"])
    assert bad.exit_code == 2
    args = ["ingest", str(zone), "--create", "--json", "--include", "*.ndjson"]
    before = datetime.now(UTC)
    ok = runner.invoke(cli, [*args, "--receipt-time", "now", "--look-back", "all"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["files"] == 1
    events, _, _ = landed(Settings.from_env())
    assert [e["event_id"] for e in events] == ["e000001"]
    assert events[0]["server_ts"] >= before  # now, not the key's hour
