"""Negative controls: every checker of the reliability campaign, fed a table it must
find fault with, reports it. Each case starts from a table the checker passes (the
positive control), plants one known fault (a lost event, a duplicate, an unsorted file,
half a batch, a leaked secret, a crashed process) and asserts the checker names it.

Which checker owns which fault:

| checker | loss | duplicate | unsorted file | half batch | secret | crash |
|---|---|---|---|---|---|---|
| ``crash.verify_final`` | yes | yes | yes | yes (as losses) | | |
| ``soak.verify_exact`` | yes | yes | yes | yes (as losses) | | |
| ``soak.Reader`` (the soak's reader) | yes | yes | yes | yes (partial batch) | | |
| ``fuzz.check_example`` (the fuzz oracle) | yes | yes | (not its job) | yes (as losses) | | |
| ``leaks._grep`` (the leak check) | | | | | yes | |
| ``harness.judge_cli_exit`` / ``judge_server_exit`` | | | | | | yes |
| ``known_bugs`` probes | | | | | | yes |
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from pyiceberg.expressions import EqualTo, In
from pyiceberg.table import Table

from lakehouse.schema import SUMMARY_KIND
from tests.reliability import known_bugs, leaks
from tests.reliability.crash import verify_final
from tests.reliability.fuzz import check_example
from tests.reliability.fuzz_cases import FileCase, Line
from tests.reliability.harness import (
    BEFORE_ANY_WRITE,
    BETWEEN_COMMITS,
    FILES_UNCOMMITTED,
    NOT_LOGGED,
    Figures,
    TableState,
    Target,
    judge_cli_exit,
    judge_server_exit,
    kill_phase,
    sqlite_target,
)
from tests.reliability.landing import Zone, add_wave
from tests.reliability.soak import Journals, Reader, verify_exact

FAULTS = ("loss", "duplicate", "unsorted", "half-batch")
WRITER_KIND = {SUMMARY_KIND: "late"}  # planted rows look like a writer's commit


# --- planting faults in a table (straight through pyiceberg) ---------------------------------


def ids_of(table: Table) -> list[str]:
    table.refresh()
    return sorted(table.scan(selected_fields=("event_id",)).to_arrow()["event_id"].to_pylist())


def plant(table: Table, fault: str, *, batch: list[str] | None = None) -> str:
    """Plant ``fault``; returns the words the checker's report must contain."""
    table.refresh()
    ids = ids_of(table)
    if fault == "loss":
        table.delete(EqualTo("event_id", ids[0]))
        return "lost" if batch is None else "missing"
    if fault == "duplicate":
        row = table.scan(row_filter=EqualTo("event_id", ids[1])).to_arrow()
        table.append(row, snapshot_properties=WRITER_KIND)
        return "duplicate" if batch is None else "twice"
    if fault == "unsorted":
        rows = table.scan().to_arrow()
        hours = pc.floor_temporal(rows["client_ts"], unit="hour")
        first_hour = rows.filter(pc.equal(hours, hours[0]))
        two = first_hour.sort_by([("client_ts", "ascending")]).slice(0, 2)
        assert two.num_rows == 2 and two["client_ts"][0] != two["client_ts"][1]
        table.delete(In("event_id", two["event_id"].to_pylist()))
        table.append(two.take(pa.array([1, 0])), snapshot_properties=WRITER_KIND)  # descending
        return "not sorted"
    if fault == "half-batch":
        victims = (batch or ids)[: len(batch or ids) // 2]
        table.delete(In("event_id", victims))
        return "partial" if batch is not None else "lost"
    raise ValueError(fault)


def reported(figures: Figures, words: str) -> bool:
    return not figures.ok and any(words in v for v in figures.violations)


# --- crash.verify_final ----------------------------------------------------------------------


@pytest.fixture
def ingested(home: Path, tmp_path: Path) -> tuple[Target, Zone]:
    """A landing zone (with bad lines and resends), ingested whole."""
    from writers.ingest import ingest

    target = sqlite_target(tmp_path / "target")
    zone = Zone(tmp_path / "landing", 11, hours=2)
    add_wave(zone, files=3, per_file=40, gz_rate=0.0)
    with target.active() as settings:
        ingest([str(zone.root)], settings, max_group_files=2)
    return target, zone


def test_verify_final_passes_the_table_as_ingested(ingested: tuple[Target, Zone]) -> None:
    target, zone = ingested
    figures = Figures()
    verify_final(target, zone, figures, "control")
    assert figures.ok, figures.violations


@pytest.mark.parametrize("fault", FAULTS)
def test_verify_final_reports_each_fault(ingested: tuple[Target, Zone], fault: str) -> None:
    target, zone = ingested
    words = plant(target.tables().events, fault)
    figures = Figures()
    verify_final(target, zone, figures, "planted")
    assert reported(figures, words), figures.violations


def test_verify_final_reports_a_lost_reject_and_a_file_logged_twice(
    ingested: tuple[Target, Zone],
) -> None:
    target, zone = ingested
    tables = target.tables()
    rejected = tables.rejected.scan().to_arrow()
    tables.rejected.delete(EqualTo("line", rejected["line"][0].as_py()))
    logged = tables.ingested.scan().to_arrow().slice(0, 1)
    tables.ingested.append(logged)
    figures = Figures()
    verify_final(target, zone, figures, "planted")
    assert reported(figures, "rejects differ") and reported(figures, "ingest log differs")


def test_verify_final_reports_an_orphan_and_a_missing_file(ingested: tuple[Target, Zone]) -> None:
    target, zone = ingested
    events = target.tables().events
    folder = Path(events.location().removeprefix("file://")) / "data"
    (folder / "planted-orphan.parquet").write_bytes(b"PAR1")
    oldest = events.metadata.snapshots[0]  # the head still reads; an older snapshot not
    assert oldest.snapshot_id != events.metadata.current_snapshot_id
    Path(oldest.manifest_list.removeprefix("file://")).unlink()
    figures = Figures()
    verify_final(target, zone, figures, "planted")
    assert reported(figures, "orphan files left") and reported(figures, "referenced files missing")
    assert figures.unreadable_snapshots >= 1


# --- soak: verify_exact and the reader --------------------------------------------------------


def write_journaled(target: Target, journal: Path, batches: int = 3, size: int = 10) -> Journals:
    """Batches of own events (ids ``w0-b<batch>-<size>-<i>``) committed by EventWriter and
    journaled after the commit returned, as the soak's workers do."""
    from writers import EventWriter

    start = datetime.now(UTC)
    client = (start - timedelta(hours=5)).replace(minute=0, second=0, microsecond=0)
    with target.active() as settings, EventWriter(settings) as writer:
        for b in range(batches):
            tag = f"w0-b{b:05d}"
            rows = [
                {
                    "event_id": f"{tag}-{size}-{i}",
                    "user_id": f"u{i}",
                    "event_type": "view",
                    "client_ts": (client + timedelta(seconds=97 * i + b)).isoformat(),
                }
                for i in range(size)
            ]
            writer.write(rows, batch_id=tag)
            writer.flush()
            entry = {
                "batch": tag,
                "own": [r["event_id"] for r in rows],
                "resent": [],
                "rows": {
                    r["event_id"]: [r["user_id"], r["event_type"], r["client_ts"]] for r in rows
                },
            }
            with journal.open("a") as f:
                f.write(json.dumps(entry) + "\n")
    journals = Journals([journal], start)
    journals.read()
    return journals


@pytest.fixture
def journaled(home: Path, tmp_path: Path) -> tuple[Target, Journals]:
    target = sqlite_target(tmp_path / "target")
    return target, write_journaled(target, tmp_path / "journal.ndjson")


def first_batch(journals: Journals) -> list[str]:
    return sorted(i for i in journals.acknowledged if i.startswith("w0-b00000-"))


def test_verify_exact_passes_what_was_journaled(journaled: tuple[Target, Journals]) -> None:
    target, journals = journaled
    figures = Figures()
    verify_exact(target.tables().events, journals, figures, "control")
    assert figures.ok, figures.violations


@pytest.mark.parametrize("fault", FAULTS)
def test_verify_exact_reports_each_fault(journaled: tuple[Target, Journals], fault: str) -> None:
    target, journals = journaled
    events = target.tables().events
    plant(events, fault, batch=first_batch(journals))
    figures = Figures()
    verify_exact(events, journals, figures, "planted")
    kind = {"loss": "losses", "duplicate": "duplicates", "half-batch": "losses"}.get(fault)
    assert not figures.ok and (kind is None or getattr(figures, kind) > 0), figures.violations
    if fault == "unsorted":
        assert reported(figures, "not sorted")


@pytest.mark.parametrize("fault", FAULTS)
def test_the_soak_reader_reports_each_fault(journaled: tuple[Target, Journals], fault: str) -> None:
    target, journals = journaled
    figures = Figures()
    reader = Reader(target, journals, figures, random.Random(0))
    reader.check()
    assert figures.ok and figures.reader_checks == 1, figures.violations
    words = plant(reader.table, fault, batch=first_batch(journals))
    reader.check()
    assert figures.reader_checks == 2
    assert reported(figures, {"loss": "lacks", "duplicate": "doubled"}.get(fault, words)), (
        figures.violations
    )


# --- the fuzz oracle ---------------------------------------------------------------------------


def _line(event_id: str, expect: str, *, valid: bool = True, hour: int = 10) -> Line:
    record = {
        "event_id": event_id,
        "user_id": "u1",
        "event_type": "view",
        "client_ts": f"2024-05-01T{hour:02d}:00:00Z",
    }
    data = json.dumps(record).encode() if valid else json.dumps(record).encode()[:-8]
    return Line(data, expect, event_id, record if valid else None)


@pytest.fixture
def fuzz_writer(home: Path, tmp_path: Path) -> Any:
    from writers import EventWriter

    target = sqlite_target(tmp_path / "target")
    with target.active() as settings:
        yield EventWriter(settings, max_records=1 << 62, max_bytes=1 << 62, max_age=1e12)


def test_the_fuzz_oracle_passes_lines_labelled_right(fuzz_writer: Any, tmp_path: Path) -> None:
    figures = Figures()
    case = FileCase([_line("ok1", "accept"), _line("bad1", "reject", valid=False)])
    check_example(fuzz_writer, tmp_path / "ex", [case], figures)
    assert figures.ok and figures.fuzz_cases == 1, figures.violations


def test_the_fuzz_oracle_reports_a_loss_and_half_a_file(fuzz_writer: Any, tmp_path: Path) -> None:
    # six lines that must be committed; three of them cannot be (a writer that dropped them)
    lines = [_line(f"h{i}", "accept", valid=i % 2 == 0) for i in range(6)]
    figures = Figures()
    check_example(fuzz_writer, tmp_path / "ex", [FileCase(lines)], figures)
    assert figures.losses == 3, figures.violations


def test_the_fuzz_oracle_reports_a_line_that_should_be_rejected(
    fuzz_writer: Any, tmp_path: Path
) -> None:
    figures = Figures()
    check_example(fuzz_writer, tmp_path / "ex", [FileCase([_line("r1", "reject")])], figures)
    assert reported(figures, "should be rejected"), figures.violations


def test_the_fuzz_oracle_reports_a_duplicate(fuzz_writer: Any, tmp_path: Path) -> None:
    events = fuzz_writer.tables.events
    fuzz_writer.write([_line("dup1", "accept", hour=3).record], batch_id="earlier")
    fuzz_writer.flush()  # the same id, in another hour: the writer cannot see it
    figures = Figures()
    check_example(fuzz_writer, tmp_path / "ex", [FileCase([_line("dup1", "accept")])], figures)
    assert ids_of(events).count("dup1") == 2
    assert reported(figures, "committed twice"), figures.violations


# --- the leak check --------------------------------------------------------------------------


def test_the_leak_check_reports_a_leaked_secret_and_only_that() -> None:
    secret = leaks._secret("s3secret")
    clean = SimpleNamespace(stdout='{"ok": true}', stderr="DEBUG connecting to ***")
    leaky = SimpleNamespace(stdout="", stderr=f"DEBUG s3.secret-access-key={secret}\n")
    figures = Figures()
    leaks._grep(clean, [secret], "lakehouse config show", figures)
    assert figures.ok and figures.hostile_cases == 1
    leaks._grep(leaky, [secret], "lakehouse -vv init", figures)
    assert reported(figures, "secret leaked by `lakehouse -vv init`")
    assert secret not in " ".join(figures.violations)  # the report itself does not leak it


# --- crashes: exit codes, servers, probes --------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "stderr", "fails"),
    [
        (0, "", False),
        (1, "error: 3 lines rejected", False),
        (75, "error: catalog pg is unreachable", False),  # documented: a note
        (70, "error: internal", False),
        (-11, "", True),  # SIGSEGV
        (-9, "", True),
        (3, "", True),
        (1, 'Traceback (most recent call last):\n  File "x"\nKeyError: 1', True),
    ],
)
def test_cli_exits_outside_the_documented_codes_fail(code: int, stderr: str, fails: bool) -> None:
    figures = Figures()
    judge_cli_exit(code, stderr, "ingest", figures)
    assert figures.ok is not fails, figures.violations
    if code in (2, 70, 75):
        assert figures.notes


@pytest.mark.parametrize(
    ("code", "stderr", "fails"),
    [(0, "stopped", False), (1, "", True), (-9, "", True), (0, "Traceback (most recent", True)],
)
def test_a_crashed_server_fails(code: int, stderr: str, fails: bool) -> None:
    figures = Figures()
    judge_server_exit(code, stderr, "maintain serve", figures)
    assert figures.ok is not fails


@pytest.mark.parametrize(
    "probe",
    [
        known_bugs.properties_text_not_validated,
        known_bugs.bytes_value_panics,
        known_bugs.concurrent_column_breaks_commit,
    ],
)
def test_a_bug_probe_whose_process_crashed_does_not_pass(
    probe: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        known_bugs, "_in_process", lambda code, workdir: "Fatal Python error\nEXIT -11"
    )
    found = probe(tmp_path)
    assert found and "did not finish" in found


def test_kill_phases_are_judged_by_what_a_kill_left() -> None:
    empty = TableState(frozenset(), frozenset(), frozenset())
    assert kill_phase(empty, empty) == BEFORE_ANY_WRITE
    assert (
        kill_phase(empty, TableState(frozenset({1}), frozenset(), frozenset())) == BETWEEN_COMMITS
    )
    assert (
        kill_phase(empty, TableState(frozenset(), frozenset({"/a"}), frozenset()))
        == FILES_UNCOMMITTED
    )
    assert (
        kill_phase(empty, TableState(frozenset({1}), frozenset(), frozenset({"f-1"}))) == NOT_LOGGED
    )
    # what an earlier kill left is not this kill's doing
    left = TableState(frozenset({1}), frozenset({"/a"}), frozenset({"f-1"}))
    assert kill_phase(left, left) == BEFORE_ANY_WRITE
