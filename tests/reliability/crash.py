"""Crash campaign: SIGKILL ``lakehouse ingest`` and ``lakehouse maintain run`` at random
moments over seeded runs, re-run, and check exactly-once.

One seeded run: a landing zone arrives in waves; each step starts an ingest, a
maintenance run, or both at once, and SIGKILLs each at a random moment. After every step
the table must read, every retained snapshot must read, and no snapshot may hold an event
twice or an event never sent. At the end a full ingest and a full maintenance run
complete, and the table must equal the landing zone exactly: every event once (same
user, type and client time), every bad line rejected once, every file logged once, every
data file sorted, no orphan left, and every line accounted for.
"""

from __future__ import annotations

import contextlib
import json
import random
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

from tests.reliability.harness import (
    BEFORE_ANY_WRITE,
    Figures,
    Proc,
    Target,
    check_files_sorted,
    check_retained_snapshots,
    files_under,
    id_counts,
    kill_phase,
    lakehouse,
    missing_files,
    read_snapshot,
    run_lakehouse,
    table_state,
    unreferenced_files,
    wait_for_writes,
)
from tests.reliability.landing import Zone, add_wave

TargetFactory = Callable[[int, Path], Target]


def ingest_args(zone: Zone, rng: random.Random) -> list[str]:
    return [
        "ingest",
        str(zone.root),
        "--json",
        "--max-files-per-commit",
        str(rng.choice((1, 2, 3, 5))),
    ]


def maintain_args(rng: random.Random, *, concurrent: bool) -> list[str]:
    return [
        "maintain", "run", "--json",
        "--snapshot-retention", "0s",
        "--retain-last", str(rng.randint(1, 4)),
        # In-flight writes look like orphans: only a run alone may use a 0s window.
        "--orphan-retention", "1h" if concurrent else "0s", "--force",
        "--max-manifests", str(rng.choice((1, 4, 8))),
        "--lease-ttl", "3s",
    ]  # fmt: skip


def _killed_at(proc: Proc, delay: float, started: float) -> bool:
    remaining = delay - (time.monotonic() - started)
    if remaining > 0:
        with contextlib.suppress(Exception):
            proc.popen.wait(timeout=remaining)
    return proc.kill()


def _expect_exit(proc: Proc, allowed: set[int], what: str, figures: Figures) -> None:
    code = proc.popen.returncode
    if code not in allowed or "Traceback" in proc.stderr:
        figures.violation("invariant_breaks", f"{what} exited {code}: {proc.stderr[-600:]}")


def check_between_steps(target: Target, zone: Zone, figures: Figures) -> None:
    """What any reader may rely on after a crash: the table reads, every retained
    snapshot reads, nothing is doubled or invented, no reject or file log is doubled."""
    try:
        tables = target.tables()
    except Exception as exc:
        figures.violation("unreadable_snapshots", f"tables do not load after a kill: {exc}")
        return
    allowed = set(zone.events)
    check_retained_snapshots(tables.events, figures, allowed_ids=allowed)
    rejected = tables.rejected.scan(selected_fields=("source", "line")).to_arrow().to_pylist()
    keys = [(r["source"], r["line"]) for r in rejected]
    if len(keys) != len(set(keys)):
        figures.violation(
            "duplicates", f"a bad line was rejected twice ({len(keys) - len(set(keys))} extra)"
        )
    logged = (
        tables.ingested.scan(selected_fields=("source",)).to_arrow().column("source").to_pylist()
    )
    if len(logged) != len(set(logged)):
        figures.violation("duplicates", "a landing file was logged as ingested twice")


def verify_final(target: Target, zone: Zone, figures: Figures, label: str) -> None:
    """The table equals the landing zone, exactly."""
    tables = target.tables()
    events = tables.events
    events.refresh()
    head = events.metadata.current_snapshot_id
    rows = read_snapshot(events, head, ("event_id", "user_id", "event_type", "client_ts"))
    counts = id_counts(rows)
    lost = set(zone.events) - set(counts)
    if lost:
        figures.violation(
            "losses", f"{label}: {len(lost)} events lost, e.g. {sorted(lost)[:3]}", len(lost)
        )
    doubled = {k: v for k, v in counts.items() if v > 1}
    if doubled:
        figures.violation(
            "duplicates",
            f"{label}: {len(doubled)} events more than once",
            sum(doubled.values()) - len(doubled),
        )
    invented = set(counts) - set(zone.events)
    if invented:
        figures.violation("invariant_breaks", f"{label}: {len(invented)} events never sent")
    ts = rows.column("client_ts").cast(pa.int64()).to_pylist()
    for row, micros in zip(
        rows.select(["event_id", "user_id", "event_type"]).to_pylist(), ts, strict=True
    ):
        want = zone.events.get(row["event_id"])
        if want is not None and want != (row["user_id"], row["event_type"], micros):
            figures.violation(
                "invariant_breaks", f"{label}: {row['event_id']} changed: {row} vs {want}"
            )
            break
    rejected = (
        tables.rejected.scan(selected_fields=("source", "line", "reason")).to_arrow().to_pylist()
    )
    keys = [(r["source"], r["line"]) for r in rejected]
    if set(keys) != zone.bad or len(keys) != len(zone.bad):
        missing, extra = zone.bad - set(keys), len(keys) - len(set(keys))
        figures.violation(
            "losses" if missing else "duplicates",
            f"{label}: rejects differ: {len(missing)} bad lines unrecorded, {extra} recorded twice, "
            f"{len(set(keys) - zone.bad)} unexpected",
        )
    if any(not r["reason"] for r in rejected):
        figures.violation("invariant_breaks", f"{label}: a reject without a reason")
    logged = (
        tables.ingested.scan(selected_fields=("source",)).to_arrow().column("source").to_pylist()
    )
    if sorted(logged) != sorted(zone.sources):
        figures.violation(
            "invariant_breaks",
            f"{label}: ingest log differs from the files ({len(logged)} vs {len(zone.sources)})",
        )
    if not zone.account() or len(rows) + len(rejected) + zone.resent != zone.lines:
        figures.violation(
            "invariant_breaks",
            f"{label}: lines do not reconcile: {zone.lines} lines vs {len(rows)} rows + {len(rejected)} rejects + {zone.resent} resends",
        )
    check_retained_snapshots(events, figures, allowed_ids=set(zone.events))
    check_files_sorted(events, head, set(), figures)
    gone = missing_files(events)
    if gone:
        figures.violation(
            "unreadable_snapshots",
            f"{label}: {len(gone)} referenced files missing, e.g. {gone[:2]}",
        )
    left = unreferenced_files(events)
    if left:
        figures.violation(
            "invariant_breaks",
            f"{label}: {len(left)} orphan files left after a 0s-window run, e.g. {left[:2]}",
        )


def crash_run(
    seed: int,
    workdir: Path,
    make_target: TargetFactory,
    *,
    steps: tuple[int, int] = (4, 7),
    files_per_wave: int = 8,
    per_file: int = 300,
    waves: int = 3,
    max_delay: float = 10.0,
    hours: int = 6,
) -> Figures:
    """One seeded run: waves of files, steps killed at random, then the full check."""
    figures = Figures(runs=1)
    rng = random.Random(seed)
    root = workdir / f"seed-{seed}"
    target = make_target(seed, root / "home")
    logs = root / "logs"
    zone = Zone(root / "landing", seed, hours=hours)
    target.tables()  # `lakehouse init`: a maintenance step may come first
    add_wave(zone, files=files_per_wave, per_file=per_file)
    n_steps = rng.randint(*steps)
    durations: list[float] = []
    phases: list[str] = []
    for step in range(n_steps):
        if zone.waves < waves and step > 0 and rng.random() < 0.5:
            add_wave(zone, files=files_per_wave, per_file=per_file)
        action = rng.choice(("ingest", "ingest", "maintain", "both"))
        procs: list[tuple[Proc, float]] = []
        before = table_state(target.tables())
        baseline = files_under(target.home)
        estimate = max(durations) if durations else max_delay
        if action in ("ingest", "both"):
            procs.append(
                (
                    lakehouse(ingest_args(zone, rng), target, logs, f"s{step}-ingest"),
                    rng.uniform(0.05, estimate),
                )
            )
        if action in ("maintain", "both"):
            args = maintain_args(rng, concurrent=action == "both")
            procs.append(
                (lakehouse(args, target, logs, f"s{step}-maintain"), rng.uniform(0.05, estimate))
            )
        # Kill moments count from the first write (imports take seconds on a busy machine).
        wait_for_writes(target.home, baseline, [p for p, _ in procs], timeout=120)
        started = time.monotonic()
        killed = False
        for proc, delay in sorted(procs, key=lambda p: p[1]):
            if _killed_at(proc, delay, started):
                figures.kills += 1
                killed = True
            else:
                durations.append(time.monotonic() - started)
                _expect_exit(proc, {0, 1}, f"seed {seed} step {step} ({action})", figures)
        if killed:
            phase = kill_phase(before, table_state(target.tables()))
            phases.append(f"{action}: {phase}")
            if phase == BEFORE_ANY_WRITE:
                figures.kills_before_any_write += 1
            else:
                figures.kills_in_commit_window += 1
        check_between_steps(target, zone, figures)
    while zone.waves < waves:
        add_wave(zone, files=files_per_wave, per_file=per_file)
    final = run_lakehouse(ingest_args(zone, rng), target, logs, "final-ingest")
    _expect_exit(final, {0, 1}, f"seed {seed} final ingest", figures)
    time.sleep(3.1)  # a killed run's lease (ttl 3s) expires
    done = run_lakehouse(
        ["maintain", "run", "--json", "--snapshot-retention", "0s", "--retain-last", "3", "--orphan-retention", "0s", "--force"],
        target, logs, "final-maintain",
    )  # fmt: skip
    _expect_exit(done, {0}, f"seed {seed} final maintenance", figures)
    if done.popen.returncode == 0:
        result = json.loads(done.stdout)
        if not result.get("ok") or result.get("skipped_reason"):
            figures.violation(
                "invariant_breaks",
                f"seed {seed}: final maintenance not ok: {result.get('skipped_reason')}",
            )
    verify_final(target, zone, figures, f"seed {seed} ({target.kind})")
    figures.events += len(zone.events)
    figures.note(f"seed {seed}: kills landed: {'; '.join(phases) or 'none'}")
    return figures


def crash_campaign(
    seeds: list[int],
    workdir: Path,
    make_target: TargetFactory,
    *,
    deadline: float | None = None,
    **options: object,
) -> Figures:
    """Seeded runs in turn (until ``deadline``, a time.monotonic() value, if given)."""
    total = Figures()
    for seed in seeds:
        if deadline is not None and time.monotonic() > deadline:
            break
        figures = crash_run(seed, workdir, make_target, **options)  # type: ignore[arg-type]
        total.merge(figures)
        print(
            f"[crash] seed {seed}: kills={figures.kills} "
            f"(in a commit window {figures.kills_in_commit_window}) events={figures.events} "
            f"{'ok' if figures.ok else 'FAILED: ' + '; '.join(figures.violations[:3])}",
            flush=True,
        )
    if total.kills and not total.kills_in_commit_window:
        total.violation(
            "invariant_breaks",
            f"none of {total.kills} kills hit a commit window: the run proved nothing about crashes",
        )
    return total
