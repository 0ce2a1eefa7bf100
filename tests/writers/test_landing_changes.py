"""Landing files that change after they were ingested: a file appended to in steps is read
on from where the last read stopped (only its new bytes, line numbers going on), a file
rewritten at the same size is found by its fingerprint and read again, a ledger made
before fingerprints keeps working, a whole-file reject is kept once, and the quiet period
is configurable. The oracle is the event ids and lines each test wrote."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from pyiceberg.schema import Schema

from catalog import open_catalog
from lakehouse import schema as spec
from lakehouse.errors import ConfigError
from lakehouse.settings import Settings
from lakehouse.tables import ensure_tables, load_tables
from tests.writers.events import event, rows
from tests.writers.landing_zone import lines
from writers import ingest
from writers.sources import landing, reading

Put = Callable[[bytes], None]
"""Store the whole content of the one file under test (S3 has no append: put it again)."""


@dataclass
class Reads:
    """Bytes the landing source really read from storage, per call."""

    sizes: list[int] = field(default_factory=list)

    def take(self) -> int:
        total = sum(self.sizes)
        self.sizes.clear()
        return total


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Reads:
    counted = Reads()
    whole, part = reading._read, reading._read_range

    def read(filesystem: Any, source: Any) -> bytes:
        data = whole(filesystem, source)
        counted.sizes.append(len(data))
        return data

    def read_range(filesystem: Any, source: Any, lo: int, hi: int) -> bytes:
        data = part(filesystem, source, lo, hi)
        counted.sizes.append(len(data))
        return data

    monkeypatch.setattr(reading, "_read", read)
    monkeypatch.setattr(reading, "_read_range", read_range)
    return counted


def landed(settings: Settings) -> tuple[list[dict], list[dict], list[dict]]:
    t = load_tables(open_catalog(settings), settings.table)
    return rows(t.events).to_pylist(), rows(t.rejected).to_pylist(), rows(t.ingested).to_pylist()


def ids(n: range) -> list[str]:
    return [f"e{i:06d}" for i in n]


def appended_in_three_steps(put: Put, location: str, settings: Settings, reads: Reads) -> None:
    """Write a file in three steps, an incomplete last line between them and a bad line in
    the last step; after each, ingest and check what landed and what was read."""
    step1 = lines([event(i) for i in range(100)])
    cut = json.dumps(event(100))
    content = step1 + cut[:25].encode()
    put(content)
    r1 = ingest([location], settings)
    assert (r1.files, r1.records_written, r1.records_rejected, r1.files_grown) == (1, 100, 0, 0)
    assert reads.take() == len(content) and r1.bytes_read == len(content)
    events, rejected, _ = landed(settings)
    assert sorted(e["event_id"] for e in events) == ids(range(100)) and rejected == []

    offset = len(step1)  # the incomplete line waited: read on from here
    step2 = cut[25:].encode() + b"\n" + lines([event(i) for i in range(101, 200)])
    cut2 = json.dumps(event(200))
    content += step2 + cut2[:10].encode()
    put(content)
    r2 = ingest([location], settings)
    assert (r2.files_grown, r2.files_reread, r2.records_written, r2.duplicates_dropped) == (
        1,
        0,
        100,
        0,
    )
    assert r2.bytes_read == len(content) - offset
    assert reads.take() == len(content) - (offset - landing.TAIL)  # the tail checked, no more

    offset = len(content) - 10
    step3 = (
        cut2[10:].encode()
        + b"\n"
        + b"not json at all\n"
        + lines([event(i) for i in range(201, 300)])
    )
    content += step3
    put(content)
    r3 = ingest([location], settings)
    assert (r3.files_grown, r3.records_written, r3.records_rejected) == (1, 100, 1)
    assert reads.take() == len(content) - (offset - landing.TAIL)
    events, rejected, ledger = landed(settings)
    got = [e["event_id"] for e in events]
    assert sorted(got) == ids(range(300)) and len(got) == len(set(got))
    bad_line = content.split(b"\n").index(b"not json at all") + 1
    assert bad_line == 202
    assert [(r["line"], r["raw"]) for r in rejected] == [(bad_line, "not json at all")]
    last = max(ledger, key=lambda r: r["ingested_at"])
    assert (last["size"], last["lines"]) == (len(content), content.count(b"\n"))

    r4 = ingest([location], settings)
    assert (r4.files, r4.files_skipped) == (0, 1) and reads.take() == 0


def same_size(a: bytes, b: bytes) -> tuple[bytes, bytes]:
    """Pad the shorter content with spaces before its last newline (JSON allows them)."""
    n = max(len(a), len(b))
    return a[:-1] + b" " * (n - len(a)) + b"\n", b[:-1] + b" " * (n - len(b)) + b"\n"


def rewritten_at_the_same_size(put: Put, location: str, settings: Settings) -> None:
    first, second = same_size(
        lines([event(i) for i in range(10, 20)]), lines([event(i) for i in range(20, 30)])
    )
    put(first)
    assert ingest([location], settings).records_written == 10
    put(second)  # same size, other events
    r2 = ingest([location], settings)
    assert (r2.files, r2.files_reread, r2.records_written) == (1, 1, 10)
    assert any("rewritten at the same size" in w for w in r2.warnings)
    put(first)  # back to the first content: read again, every event already there
    r3 = ingest([location], settings)
    assert (r3.files_reread, r3.records_written, r3.duplicates_dropped) == (1, 0, 10)
    events, _, _ = landed(settings)
    got = [e["event_id"] for e in events]
    assert sorted(got) == ids(range(10, 30)) and len(got) == len(set(got))
    assert ingest([location], settings).files_skipped == 1


def test_a_file_appended_in_three_steps_is_read_on_from_its_last_offset(
    sqlite_settings: Settings, tmp_path: Path, reads: Reads
) -> None:
    path = tmp_path / "zone" / "drop.ndjson"
    path.parent.mkdir()
    appended_in_three_steps(path.write_bytes, str(path.parent), sqlite_settings, reads)


def test_a_local_file_rewritten_at_the_same_size_is_read_again(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "zone" / "drop.ndjson"
    path.parent.mkdir()
    rewritten_at_the_same_size(path.write_bytes, str(path.parent), sqlite_settings)


def test_a_grown_file_whose_first_bytes_changed_is_read_from_the_start(
    sqlite_settings: Settings, tmp_path: Path, reads: Reads
) -> None:
    path = tmp_path / "zone" / "drop.ndjson"
    path.parent.mkdir()
    path.write_bytes(lines([event(i) for i in range(50)]))
    ingest([str(path.parent)], sqlite_settings)
    reads.take()
    content = lines([event(i) for i in range(100, 150)]) + lines([event(150)])  # longer
    path.write_bytes(content)
    r = ingest([str(path.parent)], sqlite_settings)
    assert (r.files_grown, r.files_reread, r.records_written) == (0, 1, 51)
    assert any("ingested bytes changed" in w for w in r.warnings)
    assert reads.sizes[-1] == len(content)  # the tail did not match: all read again
    events, _, _ = landed(sqlite_settings)
    assert sorted(e["event_id"] for e in events) == ids(range(50)) + ids(range(100, 151))


OLD_INGESTED = Schema(*[f for f in spec.INGESTED_SCHEMA.fields if f.field_id <= 5])


def test_a_ledger_made_before_fingerprints_keeps_working(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    zone = tmp_path / "zone"
    zone.mkdir()
    old, new = zone / "a.ndjson", zone / "b.ndjson"
    old.write_bytes(lines([event(i) for i in range(5)]))
    new.write_bytes(lines([event(i) for i in range(5, 8)]))
    catalog = open_catalog(sqlite_settings)
    name = sqlite_settings.table
    catalog.create_namespace_if_not_exists(name.namespace)
    ledger = catalog.create_table(
        name.sibling("ingested").identifier,
        schema=OLD_INGESTED,
        properties=spec.COMPANION_PROPERTIES,
    )
    ensure_tables(catalog, name)
    ledger.append(  # a row written before fingerprints: a.ndjson as ingested, at its size
        pa.table(
            {
                "source": ["file://" + str(old)],
                "size": [old.stat().st_size],
                "records": [5],
                "batch_key": ["f-old"],
                "ingested_at": [datetime.now(UTC) - timedelta(days=1)],
            },
            schema=OLD_INGESTED.as_arrow(),
        )
    )
    r1 = ingest([str(zone)], sqlite_settings)
    assert (r1.files, r1.files_skipped, r1.records_written) == (1, 1, 3)  # a.ndjson unchanged
    events, _, recorded = landed(sqlite_settings)
    assert sorted(e["event_id"] for e in events) == ids(range(5, 8))
    assert {f.name for f in load_tables(catalog, name).ingested.schema().fields} >= {
        "fingerprint",
        "lines",
    }
    by_source = {r["source"]: r for r in recorded}
    assert by_source["file://" + str(old)]["fingerprint"] is None
    assert by_source["file://" + str(new)]["fingerprint"].startswith("ino=")
    with old.open("ab") as f:  # grew, but what was read cannot be checked: from the start
        f.write(lines([event(9)]))
    r2 = ingest([str(zone)], sqlite_settings)
    assert (r2.files, r2.files_reread, r2.records_written) == (1, 1, 6)
    events, _, _ = landed(sqlite_settings)
    got = [e["event_id"] for e in events]
    assert sorted(got) == [*ids(range(8)), "e000009"] and len(got) == len(set(got))


def test_a_whole_file_reject_is_kept_once_when_the_file_changes(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "zone" / "blob.bin"
    path.parent.mkdir()
    path.write_bytes(b"\x00\x01binary" * 10)
    ingest([str(path.parent)], sqlite_settings)
    path.write_bytes(b"\x00\x02binary" * 12)  # grew
    r = ingest([str(path.parent)], sqlite_settings)
    assert (r.files, r.records_rejected) == (1, 1)
    _, rejected, _ = landed(sqlite_settings)
    assert [(r["line"], "NUL" in r["reason"]) for r in rejected] == [(None, True)]


def test_the_quiet_period_is_configurable(
    sqlite_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "zone" / "drop.ndjson"
    path.parent.mkdir()
    path.write_bytes(lines([event(1)]) + b'{"event_id": "cut')
    assert landing.LandingFiles([str(path)]).quiet == landing.QUIET
    assert landing.LandingFiles([str(path)], quiet=timedelta(0)).quiet == timedelta(0)
    monkeypatch.setenv("LAKEHOUSE_LANDING_QUIET", "soon")
    with pytest.raises(ConfigError, match="LAKEHOUSE_LANDING_QUIET"):
        landing.LandingFiles([str(path)])
    monkeypatch.setenv("LAKEHOUSE_LANDING_QUIET", "1h")
    assert ingest([str(path)], sqlite_settings).files_waiting == 0  # complete lines taken
    _, rejected, _ = landed(sqlite_settings)
    assert rejected == []
    monkeypatch.setenv("LAKEHOUSE_LANDING_QUIET", "0s")  # no wait: the cut line is a reject
    r = ingest([str(path)], sqlite_settings)
    assert (r.files_grown, r.records_rejected, r.records_written) == (1, 1, 0)
    _, rejected, _ = landed(sqlite_settings)
    assert [(x["line"], x["raw"]) for x in rejected] == [(2, '{"event_id": "cut')]
    assert max(x["size"] for x in landed(sqlite_settings)[2]) == os.path.getsize(path)
    assert ingest([str(path)], sqlite_settings).files_skipped == 1  # read to its end: done


def test_the_cli_reports_grown_and_changed_files(home: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from lakehouse.cli.main import cli

    path = tmp_path / "zone" / "drop.ndjson"
    path.parent.mkdir()
    first = lines([event(i) for i in range(3)])
    path.write_bytes(first)
    runner = CliRunner()
    assert runner.invoke(cli, ["ingest", str(path.parent), "--create"]).exit_code == 0
    path.write_bytes(first + lines([event(3)]))
    grown = runner.invoke(cli, ["ingest", str(path.parent), "--json"])
    assert grown.exit_code == 0, grown.output
    out = json.loads(grown.stdout)
    assert (out["files_grown"], out["files_reread"], out["records_written"]) == (1, 0, 1)
    assert out["bytes_read"] == len(lines([event(3)]))
    path.write_bytes(lines([event(i) for i in range(5, 7)]))  # rewritten, shorter
    changed = runner.invoke(cli, ["ingest", str(path.parent)])
    assert changed.exit_code == 0, changed.output
    assert "of which changed (read again)" in changed.output
    events, _, _ = landed(Settings.from_env())
    got = [e["event_id"] for e in events]
    assert sorted(got) == [*ids(range(4)), *ids(range(5, 7))] and len(got) == len(set(got))
