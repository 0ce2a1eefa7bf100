"""Catalog faults: commit-conflict storms, and the PostgreSQL catalog restarted mid-commit.

* Storm: many writer processes start together (a barrier) and commit small batches back
  to back on one table. The catalog refuses most commits at first; pyiceberg retries on
  the new head, and a batch that still fails is retried by the writer with the same key.
  Every acknowledged batch must be in the table once; nothing else may be.
* Restarts: writers, ``lakehouse maintain serve`` and ``lakehouse ingest`` run while the
  PostgreSQL server is stopped (``fast`` or ``immediate``) and started again at random
  moments. Each failure must be a clear error (journaled with its type; the CLI exits
  with a documented code and a message): a traceback, an exit code outside 0/1/2/70/75
  or a ``serve`` that does not exit 0 on SIGTERM fails the run; after the last restart
  everything acknowledged is in the table once, and the landing zone is ingested
  exactly once.
"""

from __future__ import annotations

import random
import signal
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.reliability.crash import verify_final
from tests.reliability.harness import (
    Figures,
    Proc,
    Target,
    judge_cli_exit,
    judge_server_exit,
    lakehouse,
    run_lakehouse,
    spawn,
)
from tests.reliability.landing import Zone, add_wave
from tests.reliability.soak import Journals, verify_exact


# Errors a caller can act on: ours (retryable or not). Anything else is reported.
def _is_classified(kind: str) -> bool:
    """Whether an error type name (as journaled) is one of the project's errors, which say
    whether to retry."""
    from lakehouse import errors

    found = getattr(errors, kind, None)
    return isinstance(found, type) and issubclass(found, errors.LakehouseError)


def _writers(
    target: Target, workdir: Path, n: int, args: list[str], tag: str
) -> tuple[list[Proc], list[Path]]:
    journals = [workdir / f"{tag}-journal-{w}.ndjson" for w in range(n)]
    procs = [
        spawn(
            [
                "-m",
                "tests.reliability.worker",
                "--writer",
                str(w),
                "--journal",
                str(journals[w]),
                *args,
            ],
            target,
            workdir / "logs",
            f"{tag}-writer-{w}",
        )
        for w in range(n)
    ]
    return procs, journals


def _errors(journals: Journals, figures: Figures, label: str) -> None:
    for kind, count in sorted(journals.errors.items()):
        figures.note(f"{label}: writers saw {count} x {kind} (retried with the same batch key)")
        if not _is_classified(kind):
            figures.note(
                f"{label}: {kind} is not a LakehouseError (not classified retryable/terminal)"
            )
    for message in journals.error_messages[:3]:
        figures.note(f"{label}: e.g. {message}")


def conflict_storm(
    target: Target, workdir: Path, *, writers: int = 6, batches: int = 12, seed: int = 0
) -> Figures:
    """``writers`` processes x ``batches`` commits on one table, all at once."""
    figures = Figures(runs=1, concurrent_writers=writers)
    target.tables()
    gate = workdir / "gate"
    gate.mkdir(parents=True, exist_ok=True)
    args = ["--seed", str(seed), "--batches", str(batches), "--pause", "0", "--min-size", "5",
            "--max-size", "40", "--barrier", f"{gate}:{writers}"]  # fmt: skip
    procs, paths = _writers(target, workdir, writers, args, f"storm-{target.kind}")
    for w, proc in enumerate(procs):
        if proc.wait(timeout=1800) != 0:
            figures.violation(
                "invariant_breaks",
                f"storm writer {w} exited {proc.popen.returncode}: {proc.stderr[-400:]}",
            )
    journals = Journals(paths, datetime.now(UTC))
    journals.read()
    figures.commits += journals.batches
    figures.commit_errors_retried += sum(journals.errors.values())
    if journals.batches != writers * batches:
        figures.violation(
            "losses", f"{journals.batches} of {writers * batches} batches acknowledged"
        )
    verify_exact(target.tables().events, journals, figures, f"storm ({target.kind})")
    figures.events += len(journals.acknowledged)
    refused = sum(journals.conflicts.values())
    figures.note(
        f"storm ({target.kind}): {writers} writers x {batches} batches, {refused} commits refused by the catalog and retried"
    )
    _errors(journals, figures, f"storm ({target.kind})")
    return figures


def _restart_loop(
    server: Any,
    rng: random.Random,
    stop: threading.Event,
    figures: Figures,
    pause: tuple[float, float],
) -> None:
    while not stop.wait(rng.uniform(*pause)):
        mode = rng.choice(("fast", "immediate"))
        server.stop(mode)
        figures.catalog_restarts += 1
        time.sleep(rng.uniform(0.3, 3.0))
        server.start()


def catalog_restarts(
    server: Any,
    target: Target,
    workdir: Path,
    *,
    seconds: float = 60,
    writers: int = 3,
    seed: int = 0,
    pause: tuple[float, float] = (3.0, 8.0),
) -> Figures:
    """Writers, the maintenance loop and landing ingests while PostgreSQL restarts."""
    figures = Figures(runs=1, concurrent_writers=writers)
    rng = random.Random(seed)
    target.tables()
    zone = Zone(workdir / "landing", seed, hours=4)
    add_wave(zone, files=6, per_file=150)
    args = ["--seed", str(seed), "--seconds", str(seconds), "--pause", "0.3", "--max-size", "40"]
    procs, paths = _writers(target, workdir, writers, args, "restart")
    serve = lakehouse(
        ["maintain", "serve", "--json", "--every", "3s", "--snapshot-retention", "1m", "--orphan-retention", "1h", "--force", "--lease-ttl", "20s"],
        target, workdir / "logs", "restart-serve",
    )  # fmt: skip
    stop = threading.Event()
    restarts = threading.Thread(
        target=_restart_loop, args=(server, rng, stop, figures, pause), daemon=True
    )
    began = time.monotonic()
    restarts.start()
    codes: list[int] = []
    try:
        attempt = 0
        while time.monotonic() - began < seconds:  # ingest the zone again and again meanwhile
            if attempt == 2:
                add_wave(zone, files=4, per_file=150)
            proc = run_lakehouse(
                ["ingest", str(zone.root), "--json", "--max-files-per-commit", "2"],
                target,
                workdir / "logs",
                f"restart-ingest-{attempt}",
            )
            codes.append(proc.popen.returncode)
            judge_cli_exit(
                proc.popen.returncode, proc.stderr, f"ingest {attempt} during restarts", figures
            )
            attempt += 1
        for w, writer in enumerate(procs):
            if writer.wait(timeout=900) != 0:
                figures.violation(
                    "invariant_breaks",
                    f"writer {w} exited {writer.popen.returncode}: {writer.stderr[-400:]}",
                )
    finally:
        stop.set()
        restarts.join()  # the loop always starts the server again before it stops
        for writer in procs:
            writer.kill()
        serve.popen.send_signal(signal.SIGTERM)
        try:
            serve.wait(timeout=300)
        except Exception:
            serve.kill()
    figures.minutes_soaked += (time.monotonic() - began) / 60
    judge_server_exit(
        serve.popen.returncode, serve.stderr, "maintain serve during restarts", figures
    )
    figures.note(f"restarts: ingest exit codes {sorted(set(codes))} over {len(codes)} runs")
    journals = Journals(paths, datetime.now(UTC))
    journals.read()
    figures.commits += journals.batches
    figures.commit_errors_retried += sum(journals.errors.values())
    _errors(journals, figures, "restarts")
    # The landing zone: a last ingest and maintenance run, then exactly once.
    final = run_lakehouse(
        ["ingest", str(zone.root), "--json"], target, workdir / "logs", "restart-final-ingest"
    )
    if final.popen.returncode not in (0, 1):
        figures.violation(
            "invariant_breaks",
            f"final ingest after restarts exited {final.popen.returncode}: {final.stderr[-400:]}",
        )
    done = run_lakehouse(
        ["maintain", "run", "--json", "--no-lease", "--snapshot-retention", "0s", "--retain-last", "3", "--orphan-retention", "0s", "--force"],
        target, workdir / "logs", "restart-final-maintain",
    )  # fmt: skip
    if done.popen.returncode != 0:
        figures.violation(
            "invariant_breaks",
            f"final maintenance after restarts exited {done.popen.returncode}: {done.stderr[-400:]}",
        )
    zone_figures = Figures()
    _verify_zone_with_writers(target, zone, journals, zone_figures)
    figures.merge(zone_figures)
    figures.events += len(journals.acknowledged) + len(zone.events)
    return figures


def _verify_zone_with_writers(
    target: Target, zone: Zone, journals: Journals, figures: Figures
) -> None:
    """The zone's events and the writers' share one table: the writers' acknowledged
    events join the zone's as expected rows, and the whole table is checked exactly."""
    missing = journals.acknowledged - set(journals.content)
    if missing:
        figures.violation(
            "invariant_breaks", f"restarts: {len(missing)} acknowledged ids without content"
        )
    for event_id, content in journals.content.items():
        zone.events.setdefault(event_id, content)
    zone.lines += len(journals.content)  # the writers' events count as lines of their own
    verify_final(target, zone, figures, "restarts (landing)")
