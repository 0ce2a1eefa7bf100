"""Two followers of one zone and table: with the ingest lease one does the work and the
other stands by; without it both work, and still every event lands exactly once."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from lakehouse import summary
from tests.writers.follow_support import (
    Follower,
    assert_exactly_once,
    stored,
    tables,
    write_file,
)

pytestmark = pytest.mark.slow


def run_two(
    home: Path, tmp_path: Path, *extra: str, files_per_wave: int = 6
) -> tuple[Follower, Follower, set[str], int, datetime]:
    zone = tmp_path / "landing"
    expected: set[str] = set()
    total = 0

    def wave(n: int) -> None:
        nonlocal total
        for f in range(files_per_wave):
            ids = [f"w{n}-f{f}-{i}" for i in range(300)]
            expected.update(ids)
            write_file(zone / f"{n:02d}" / f"part-{f}.ndjson", ids, bad_lines=['{"cut"'])
            total += 1

    wave(1)
    args = ("--every", "1s", "--settle", "1s", "--max-files-per-commit", "1", *extra)
    first = Follower(zone, tmp_path / "a", "--create", *args)
    first.wait_for("the first follower's first cycle", lambda: bool(first.cycles()))
    second = Follower(zone, tmp_path / "b", *args)
    try:
        second.wait_for("the second follower's first cycle", lambda: bool(second.cycles()))
        for n in (2, 3):
            wave(n)
            first.wait_for(
                f"wave {n} ingested",
                lambda: len(set(stored(tables(home).ingested, "source"))) >= total,
                poll=0.5,
            )
        now = datetime.now(UTC)
        first.wait_cycle_after(now)
        second.wait_cycle_after(now)
        first_stopped = datetime.now(UTC)  # then the second may take over the lease
        codes = (first.stop(), second.stop())
    finally:
        first.close()
        second.close()
    assert codes == (0, 0), first.stderr_text() + second.stderr_text()
    return first, second, expected, total, first_stopped


def test_with_the_lease_one_follower_works_and_the_other_stands_by(
    home: Path, tmp_path: Path
) -> None:
    first, second, expected, total, first_stopped = run_two(home, tmp_path)
    assert_exactly_once(home, expected)
    assert len(stored(tables(home).rejected, "source")) == total
    # the first took the lease at its first cycle and kept it: all the work is its own
    assert first.files() == total, (first.files(), second.files())
    assert second.files() == 0
    while_first_ran = [
        c for c in second.cycles() if datetime.fromisoformat(c["started_at"]) < first_stopped
    ]
    standby = [c for c in while_first_ran if c["standby"]]
    other = [c for c in while_first_ran if not c["standby"]]
    assert standby and not other, other
    assert "ingest lease" in standby[0]["standby"]
    assert not any(c["standby"] for c in first.cycles())


def batch_keys_committed_twice(home: Path) -> list[str]:
    """Batch keys found on more than one events commit (two writers of the same batch
    both got through)."""
    events = tables(home).events
    events.refresh()
    seen: Counter[tuple[str | None, str | None]] = Counter(
        (
            s.summary.additional_properties.get(summary.BATCH_KEY),
            s.summary.additional_properties.get(summary.KIND),
        )
        for s in events.metadata.snapshots
        if s.summary is not None
    )
    return [str(k) for k, n in seen.items() if n > 1 and k[0]]


def test_without_the_lease_both_work_and_every_event_lands_once(home: Path, tmp_path: Path) -> None:
    first, second, expected, total, _ = run_two(home, tmp_path, "--no-lease")
    twice = batch_keys_committed_twice(home)
    assert not twice, f"batches committed twice: {twice}"
    assert_exactly_once(home, expected)
    rejected = tables(home).rejected.scan(selected_fields=("source", "line")).to_arrow()
    keys = list(zip(rejected["source"].to_pylist(), rejected["line"].to_pylist(), strict=True))
    assert len(keys) == len(set(keys)) == total, "a reject was kept twice or lost"
    assert first.files() > 0 and second.files() > 0, (first.files(), second.files())
    assert not any(c["standby"] for c in first.cycles() + second.cycles())
    print(f"files committed by each follower: {first.files()} + {second.files()} for {total}")
