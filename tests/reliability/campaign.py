"""The reliability campaign, long mode (the short mode is the pytest tests beside this).

    .venv/bin/python -m tests.reliability.campaign --minutes 30 --report reliability.json

Runs, within the time given: the crash campaign (seeded runs alternating the embedded
SQLite catalog and PostgreSQL), the concurrency soak (PostgreSQL), bad-input fuzzing,
catalog faults (conflict storms on both catalogs, PostgreSQL restarts) and the hostile
names and secrets checks, then probes every bug it found before (all fixed; one that
comes back is a failure). Prints one summary (runs, kills, events, concurrent writers, minutes soaked, fuzz cases, losses, duplicates, unreadable
snapshots, ...) and exits 1 when any promise broke. It starts its own PostgreSQL cluster
(and the S3 emulator, when moto is installed) on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from tests.reliability import faults, hardening, hostile, known_bugs, leaks
from tests.reliability.crash import crash_campaign
from tests.reliability.fuzz import fuzz
from tests.reliability.harness import Figures, Target, postgres_target, sqlite_target
from tests.reliability.soak import soak

SHARES = {"crash": 0.35, "soak": 0.30, "fuzz": 0.08, "faults": 0.17, "hostile": 0.10}


def _phase(name: str, total: Figures, run: Callable[[], Figures]) -> None:
    started = time.monotonic()
    print(f"[campaign] {name} ...", flush=True)
    try:
        figures = run()
    except Exception as exc:  # a phase that cannot finish is itself a finding
        figures = Figures()
        figures.violation(
            "invariant_breaks", f"{name} phase raised {type(exc).__name__}: {exc}"[:400]
        )
    total.merge(figures)
    print(
        figures.summary(f"[campaign] {name} done in {(time.monotonic() - started) / 60:.1f} min"),
        flush=True,
    )


@contextmanager
def _postgres(enabled: bool) -> Iterator[Any]:
    if not enabled:
        yield None
        return
    from tests.support.postgres import PostgresUnavailable, running_postgres

    try:
        with running_postgres() as server:
            yield server
    except PostgresUnavailable as exc:
        print(f"[campaign] PostgreSQL unavailable, SQLite only: {exc}", flush=True)
        yield None


def run(minutes: float, workdir: Path, *, seed: int, use_postgres: bool) -> Figures:
    total = Figures()
    budget = {k: v * minutes * 60 for k, v in SHARES.items()}
    databases = iter(range(10**6))

    def pg(server: Any, root: Path, label: str) -> Target:
        return postgres_target(server, root, f"{label}_{next(databases)}")

    with _postgres(use_postgres) as server:

        def target_for(index: int, root: Path) -> Target:
            if server is not None and index % 2:
                return pg(server, root, "crash")
            return sqlite_target(root)

        deadline = time.monotonic() + budget["crash"]
        seeds = list(range(seed, seed + 10_000))
        _phase(
            "crash",
            total,
            lambda: crash_campaign(
                seeds, workdir / "crash", lambda s, root: target_for(s, root), deadline=deadline
            ),
        )

        soak_seconds = max(60.0, budget["soak"] - 150)  # start-up and the final check
        soak_target = (
            pg(server, workdir / "soak" / "home", "soak")
            if server
            else sqlite_target(workdir / "soak" / "home")
        )
        _phase(
            "soak",
            total,
            lambda: soak(soak_target, workdir / "soak", seconds=soak_seconds, writers=4, seed=seed),
        )

        def fuzz_rounds() -> Figures:
            out = Figures()
            deadline = time.monotonic() + budget["fuzz"]
            round_ = 0
            while time.monotonic() < deadline or round_ == 0:
                root = workdir / "fuzz" / f"round-{round_}"
                out.merge(
                    fuzz(
                        sqlite_target(root / "home"),
                        root,
                        examples=60,
                        record_examples=40,
                        seed=seed + round_,
                    )
                )
                round_ += 1
            return out

        _phase("fuzz", total, fuzz_rounds)

        def fault_runs() -> Figures:
            out = Figures()
            base = workdir / "faults"
            out.merge(
                faults.conflict_storm(
                    sqlite_target(base / "sqlite" / "home"), base / "sqlite", writers=6, batches=10
                )
            )
            if server is not None:
                out.merge(
                    faults.conflict_storm(
                        pg(server, base / "pg" / "home", "storm"),
                        base / "pg",
                        writers=8,
                        batches=12,
                    )
                )
                seconds = max(60.0, budget["faults"] - 420)
                out.merge(
                    faults.catalog_restarts(
                        server,
                        pg(server, base / "restart" / "home", "restart"),
                        base / "restart",
                        seconds=seconds,
                        writers=3,
                        seed=seed,
                    )
                )
            return out  # fmt: skip

        _phase("faults", total, fault_runs)

        def hostile_runs() -> Figures:
            out = Figures()
            base = workdir / "hostile"
            target = sqlite_target(base / "home")
            hostile.check_sql_builders(out)
            hostile.check_table_names(target, base / "names", out)
            hostile.check_event_names(target, base, out)
            hostile.check_file_names(target, base, out)
            hardening.check_orphan_window(
                sqlite_target(base / "orphans" / "home"), base / "orphans", out
            )
            hardening.check_companion_names(target, base / "companions", out)
            hardening.check_column_explosion(
                sqlite_target(base / "wide" / "home"), base / "wide", out
            )
            if server is not None:
                hardening.check_password_forms(server, base / "pwforms", out)
            if server is not None:
                leaks.check_postgres_secrets(server, base / "pg", out, database="secrets")
            try:
                from tests.support.moto import running_moto

                with running_moto() as moto:
                    leaks.check_s3_secrets(moto, base / "s3", out)
            except Exception as exc:  # moto missing or not starting: say so
                out.note(f"S3 secrets not checked: {type(exc).__name__}: {exc}"[:200])
            # every bug the campaign found is fixed: one that comes back breaks a promise
            for name, probe in known_bugs.PROBES.items():
                found = probe(base / "bugs" / name)
                if found:
                    out.violation("invariant_breaks", f"bug {name} is back: {found}")
                out.hostile_cases += 1
            if server is not None:
                found = known_bugs.outage_escapes_as_raw_error(
                    server, pg(server, base / "outage", "outage"), base / "outage"
                )
                if found:
                    out.violation("invariant_breaks", f"bug catalog-outage-raw-error: {found}")
                out.hostile_cases += 1
            return out

        _phase("hostile", total, hostile_runs)
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.reliability.campaign", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--minutes", type=float, default=30.0, help="time budget, split over the phases"
    )
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="keep the runs here (default: a temp dir, removed)",
    )
    parser.add_argument(
        "--report", type=Path, default=None, help="also write the figures as JSON here"
    )
    parser.add_argument(
        "--no-postgres", action="store_true", help="SQLite only (no PostgreSQL server)"
    )
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="lakehouse-reliability-"))
    started = time.monotonic()
    command = " ".join(
        ["python -m tests.reliability.campaign", *(argv if argv is not None else sys.argv[1:])]
    )
    with nullcontext():
        figures = run(args.minutes, workdir, seed=args.seed, use_postgres=not args.no_postgres)
    elapsed = (time.monotonic() - started) / 60
    print(figures.summary(f"reliability campaign: {elapsed:.1f} min, `{command}`"), flush=True)
    if args.report:
        args.report.write_text(
            json.dumps(
                {"command": command, "minutes": round(elapsed, 1), **figures.to_dict()}, indent=2
            )
        )
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if figures.ok else 1


if __name__ == "__main__":
    sys.exit(main())
