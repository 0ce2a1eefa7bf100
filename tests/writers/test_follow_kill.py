"""A follower killed with SIGKILL at random moments, and at least once with a batch in
flight, then started again, loses and doubles nothing; SIGTERM with a batch in flight
lets that batch finish (events, rejects and ledger) and exits 0.

A batch is "in flight" when the events table's data folder holds a new Parquet file and
the ledger's data folder does not yet (the ledger is written last). Where each kill
landed is printed (``pytest -s``) and kept in the assertion messages."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.writers.follow_support import (
    Follower,
    assert_exactly_once,
    stored,
    tables,
    write_file,
)

pytestmark = pytest.mark.slow

PER_FILE = 1500
ARGS = ("--every", "1s", "--settle", "1s", "--max-files-per-commit", "2", "--lease-ttl", "3s")


@dataclass(frozen=True)
class Progress:
    """Files in the warehouse: events data, events metadata, ledger data."""

    events_data: int
    events_metadata: int
    ledger_data: int

    @classmethod
    def read(cls, home: Path) -> Progress:
        root = home / "warehouse" / "analytics"

        def count(folder: Path, pattern: str) -> int:
            return sum(1 for _ in folder.rglob(pattern)) if folder.exists() else 0

        return cls(
            count(root / "events" / "data", "*.parquet"),
            count(root / "events" / "metadata", "*.metadata.json"),
            count(root / "events_ingested" / "data", "*.parquet"),
        )


def where(before: Progress, now: Progress, last_ledger: Progress, cycles: list[dict]) -> str:  # type: ignore[type-arg]
    """Where a kill landed, from the warehouse as it was at the kill."""
    batches = now.ledger_data - before.ledger_data
    standby = sum(1 for c in cycles if c["standby"])
    if now.events_data > last_ledger.events_data and now.ledger_data == last_ledger.ledger_data:
        if now.events_metadata > last_ledger.events_metadata:
            state = "batch in flight: events committed, ledger not yet"
        else:
            state = "batch in flight: events files written, not yet committed"
    else:
        state = "between batches or waiting for the next cycle"
    return (
        f"{len(cycles)} cycle(s) reported ({standby} standby: waiting for the lease of the "
        f"follower killed before to lapse), {batches} batch(es) committed; {state}"
    )


def zone_with(zone: Path, round_: int, files: int, expected: set[str]) -> int:
    for f in range(files):
        ids = [f"r{round_}-f{f}-{i}" for i in range(PER_FILE)]
        expected.update(ids)
        write_file(zone / f"{round_:02d}" / f"part-{f:03d}.ndjson", ids, bad_lines=['{"cut"'])
    return files


def watch_until_in_flight(follower: Follower, home: Path, timeout: float = 180) -> Progress:
    """Poll the warehouse until a batch is in flight; returns the progress at the last
    ledger change."""
    last_ledger = Progress.read(home)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and follower.proc.poll() is None:
        now = Progress.read(home)
        if now.ledger_data != last_ledger.ledger_data:
            last_ledger = now
        elif now.events_data > last_ledger.events_data:
            return last_ledger
        time.sleep(0.005)
    raise AssertionError("no batch was seen in flight:\n" + follower.stderr_text()[-2000:])


def started(follower: Follower, home: Path, before: Progress) -> Callable[[], bool]:
    return lambda: bool(follower.cycles()) or Progress.read(home) != before


def test_sigkill_at_random_moments_and_in_flight_then_restart(home: Path, tmp_path: Path) -> None:
    zone = tmp_path / "landing"
    expected: set[str] = set()
    total = zone_with(zone, 0, 16, expected)
    rng = random.Random(20261203)
    landed: list[str] = []
    out = tmp_path / "out"
    create = ("--create",)
    for round_ in range(1, 7):
        if round_ > 1:
            total += zone_with(zone, round_, 6, expected)
        before = Progress.read(home)
        follower = Follower(zone, out, *create, *ARGS)
        create = ()
        try:
            if round_ % 2:  # kill with a batch in flight
                last_ledger = watch_until_in_flight(follower, home)
            else:  # kill at a random moment after the follower started working
                follower.wait_for(
                    "a first cycle or commit", started(follower, home, before), poll=0.01
                )
                time.sleep(rng.uniform(0.0, 2.5))
                last_ledger = Progress.read(home)
            now, cycles = Progress.read(home), follower.cycles()
            follower.kill()
        finally:
            follower.close()
        landed.append(f"round {round_}: {where(before, now, last_ledger, cycles)}")
    print("\n".join(landed))
    in_flight = [text for text in landed if "in flight" in text]
    assert len(in_flight) >= 3, landed

    final = Follower(zone, out, *ARGS)
    try:
        final.wait_for(
            "every file ingested",
            lambda: len(set(stored(tables(home).ingested, "source"))) >= total,
            poll=1.0,
        )
        final.wait_cycle_after(datetime.now(UTC))
        code = final.stop()
    finally:
        final.close()
    assert code == 0, final.stderr_text()
    assert_exactly_once(home, expected)
    t = tables(home)
    rejected = t.rejected.scan(selected_fields=("source", "line")).to_arrow().to_pylist()
    assert len(rejected) == total, f"{len(rejected)} rejects for {total} bad lines; {landed}"
    assert len({(r["source"], r["line"]) for r in rejected}) == total
    ledger = stored(t.ingested, "source")
    assert len(ledger) == len(set(ledger)) == total


def test_sigterm_with_a_batch_in_flight_finishes_it_and_exits_0(home: Path, tmp_path: Path) -> None:
    zone = tmp_path / "landing"
    expected: set[str] = set()
    total = zone_with(zone, 0, 40, expected)
    follower = Follower(zone, tmp_path / "out", "--create", *ARGS)
    try:
        watch_until_in_flight(follower, home)
        code = follower.stop()
    finally:
        follower.close()
    assert code == 0, follower.stderr_text()
    cycles = follower.cycles()
    assert cycles and cycles[-1]["stopped"] is True, cycles
    done = sum(c["files"] for c in cycles)
    assert 0 < done < total, f"{done} of {total} files: the stop did not cut the cycle short"
    # the batch in flight finished whole: what the ledger holds is exactly what is stored
    t = tables(home)
    ledger = stored(t.ingested, "source")
    assert len(ledger) == len(set(ledger)) == done
    names = {Path(s).stem for s in ledger}  # part-NNN
    in_ledger = {i for i in expected if f"part-{int(i.split('-')[1][1:]):03d}" in names}
    assert_exactly_once(home, in_ledger)
    assert len(stored(t.rejected, "source")) == done

    again = Follower(zone, tmp_path / "out", *ARGS)
    try:
        again.wait_files(total - done)
        code = again.stop()
    finally:
        again.close()
    assert code == 0, again.stderr_text()
    assert_exactly_once(home, expected)
