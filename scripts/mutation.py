"""Mutation testing of the modules that decide what lands where (``./dev mutation``).

    ./dev mutation                      # every module below, one after the other
    ./dev mutation writers/dedupe.py    # one module (several may be given)
    ./dev mutation --list               # the modules and the tests that judge each
    ./dev mutation --again writers/dedupe.py  # judge the last run's survivors again
    ./dev mutation --resume writers/writer.py  # go on with a run that was stopped

Each module is mutated by mutmut 3 (pinned in the ``dev`` extra) in a scratch copy of
the tree (``.mutation/<module>/``, mutmut's own ``mutants/`` inside it), so the working
tree is never edited; every mutant is judged by a small set of fast tests chosen for
that module (no ``slow``, ``trino`` or ``postgres`` tests), only those of them that run
the mutated function. The score is (killed + timeouts) / every mutant judged (a timeout
is a mutant that made the tests hang); one line of JSON per module. A survivor is shown
with ``mutmut show NAME`` run in the scratch copy. ``--again`` keeps the scratch copy
and its verdicts, brings the tree's current files into it (new tests are found and
traced by mutmut) and judges only the survivors again, so the tests written for them
count without judging every mutant anew. When the module's list of test files grew
since the run (new test files written for its survivors), the survivors and the
mutants no test reached are judged by the whole new list; mutmut forgets every verdict
when its list of tests changes, so the others (killed by tests that are all still in
the list) are put back afterwards. Any other change of the list needs a fresh run.
``--resume`` keeps the scratch copy and its verdicts and judges the mutants a stopped
run left unjudged (with the same list of tests).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRATCH = ROOT / ".mutation"
MARKERS = "not slow and not trino and not postgres"

MODULES: dict[str, list[str]] = {
    "lakehouse/hours.py": ["tests/test_hours.py", "tests/writers/test_lateness.py"],
    "writers/dedupe.py": [
        "tests/writers/test_dedupe.py",
        "tests/writers/test_dedupe_hours.py",
        "tests/writers/test_dedupe_record.py",
        "tests/writers/test_dedupe_bounds.py",
        "tests/writers/test_drop_committed.py",
        "tests/writers/test_lateness.py",
        "tests/test_hours.py",
    ],
    "writers/normalize.py": [
        "tests/writers/test_normalize.py",
        "tests/writers/test_normalize_exact.py",
    ],
    "writers/writer.py": [
        "tests/writers/test_writer.py",
        "tests/writers/test_buffer.py",
        "tests/writers/test_writer_units.py",
        "tests/writers/test_lateness.py",
        "tests/writers/test_schema_growth.py",
        "tests/writers/test_ingest.py",
    ],
    "writers/commit.py": [
        "tests/writers/test_commit_races.py",
        "tests/writers/test_writer.py",
        "tests/writers/test_storage_retries.py",
        "tests/writers/test_key_index.py",
        "tests/writers/test_batch_key_race.py",
        "tests/writers/test_commit_units.py",
    ],
    "maintenance/plan.py": [
        "tests/maintenance/test_plan_units.py",
        "tests/maintenance/test_compaction.py",
        "tests/maintenance/test_hot_boundary.py",
        "tests/maintenance/test_plan_snapshot.py",
    ],
    "maintenance/expire.py": [
        "tests/maintenance/test_expire_exact.py",
        "tests/maintenance/test_expire.py",
        "tests/maintenance/test_reach_line.py",
    ],
    "maintenance/orphans.py": [
        "tests/maintenance/test_orphan_kinds.py",
        "tests/maintenance/test_orphans.py",
        "tests/maintenance/test_orphan_window.py",
        "tests/maintenance/test_reach_line.py",
    ],
    "maintenance/replace.py": [
        "tests/maintenance/test_replace_conflicts.py",
        "tests/maintenance/test_replace_deletes.py",
        "tests/maintenance/test_replace_retries.py",
        "tests/catalog/test_private_api.py",
        "tests/maintenance/test_concurrency.py",
    ],
}


def _copy_tree(dest: Path, *, fresh: bool = True) -> None:
    """The tracked and new (not ignored) files of the tree, copied to ``dest`` (emptied
    first when ``fresh``; otherwise over it, test files into mutmut's ``mutants/`` too)."""
    if fresh and dest.exists():
        shutil.rmtree(dest)
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout.split("\n")  # fmt: skip
    for name in filter(None, listed):
        source = ROOT / name
        if not source.is_file() or name.startswith(".mutation/"):
            continue
        targets = [dest / name]
        if not fresh and name.startswith("tests/"):
            targets.append(dest / "mutants" / name)
        for target in targets:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def _config(module: str, tests: list[str]) -> str:
    """mutmut's configuration for one module (``setup.cfg`` of the scratch copy)."""
    package = module.split("/")[0]
    others = [p for p in ("lakehouse", "writers", "maintenance", "catalog") if p != package]
    lines = ["[mutmut]", f"source_paths={package}", f"only_mutate={module}", "also_copy="]
    lines += [f"    {p}" for p in [*others, "scripts"]]
    lines += ["pytest_add_cli_args_test_selection="] + [f"    {t}" for t in tests]
    lines += ["pytest_add_cli_args=", "    -m", f"    {MARKERS}", "    -p", "    no:randomly"]
    lines += ["    -p", "    scripts.mutation_order"]  # a mutant's fastest tests first
    # polars and pyarrow start thread pools: forking straight from a process that ran
    # tests can deadlock a worker (reported as a timeout). A fork server that only
    # collected the tests forks clean workers.
    lines += ["process_isolation=forkserver", "forkserver_warmup=collect"]
    return "\n".join(lines) + "\n"


def _survivors(mutmut: str, work: Path, env: dict[str, str], kinds: str = "survived") -> list[str]:
    listed = subprocess.run(
        [mutmut, "results"], cwd=work, env=env, capture_output=True, text=True
    ).stdout
    return re.findall(rf"^\s*(\S+): (?:{kinds})$", listed, re.M)


def _selected(config: str) -> list[str]:
    """The test files a module's mutmut configuration names."""
    lines = config.splitlines()
    start = lines.index("pytest_add_cli_args_test_selection=") + 1
    return [line.strip() for line in itertools.takewhile(lambda x: x[:4] == "    ", lines[start:])]


def _verdicts(work: Path) -> dict[Path, dict[str, int | None]]:
    """mutmut's verdict (exit code) of every mutant, per mutated file."""
    return {
        meta: json.loads(meta.read_text())["exit_code_by_key"]
        for meta in (work / "mutants").rglob("*.py.meta")
    }


def _restore(saved: dict[Path, dict[str, int | None]], rejudged: set[str]) -> None:
    """Put back the verdicts of the mutants not judged again (see the module docstring)."""
    for meta, codes in saved.items():
        data = json.loads(meta.read_text())
        for name, code in codes.items():
            if name not in rejudged:
                data["exit_code_by_key"][name] = code
        meta.write_text(json.dumps(data, indent=4))


def run_module(
    module: str, python: str, children: int, *, again: bool = False, resume: bool = False
) -> dict[str, object]:
    tests = [t for t in MODULES[module] if (ROOT / t).exists()]
    work = SCRATCH / module.replace("/", "_").removesuffix(".py")
    mutmut = str(Path(python).with_name("mutmut"))
    env = {**os.environ, "POLARS_ICEBERG_PLANNER": "pyiceberg"}
    env = {k: v for k, v in env.items() if not k.startswith(("LAKEHOUSE_", "PYICEBERG_"))}
    if resume and (work / "mutants").is_dir():
        if (work / "setup.cfg").read_text() != _config(module, tests):
            sys.exit(f"{module}: its list of tests changed since the run; run it afresh")
        print(f"[mutation] {module}: resumed", file=sys.stderr, flush=True)
        subprocess.run(
            [mutmut, "run", "--max-children", str(children)],
            cwd=work, env=env, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        return _report(module, tests, work, mutmut, env)
    again = again and (work / "mutants").is_dir()
    previous = _survivors(mutmut, work, env) if again else []
    saved: dict[Path, dict[str, int | None]] = {}
    if again and (work / "setup.cfg").read_text() != _config(module, tests):
        before = _selected((work / "setup.cfg").read_text())
        if not set(before) < set(tests) or (work / "setup.cfg").read_text() != _config(
            module, before
        ):
            sys.exit(f"{module}: its list of tests changed since the last run; run it afresh")
        previous = _survivors(mutmut, work, env, "survived|no tests")
        saved = _verdicts(work)
    _copy_tree(work, fresh=not again)
    (work / "setup.cfg").write_text(_config(module, tests))
    print(f"[mutation] {module}: judged by {' '.join(tests)}", file=sys.stderr, flush=True)
    if not again or previous:
        subprocess.run(
            [mutmut, "run", "--max-children", str(children), *previous],
            cwd=work, env=env, stdout=subprocess.DEVNULL,
        )  # fmt: skip
    if saved:
        _restore(saved, set(previous))
    return _report(module, tests, work, mutmut, env)


def _report(
    module: str, tests: list[str], work: Path, mutmut: str, env: dict[str, str]
) -> dict[str, object]:
    subprocess.run([mutmut, "export-cicd-stats"], cwd=work, env=env, capture_output=True)
    stats = json.loads((work / "mutants" / "mutmut-cicd-stats.json").read_text())
    survivors = _survivors(mutmut, work, env)
    # a stopped run leaves mutants with no verdict: they are not in the score
    unjudged = sum(c is None for codes in _verdicts(work).values() for c in codes.values())
    judged = stats["total"] - stats["skipped"] - stats["check_was_interrupted_by_user"] - unjudged
    # A timeout is a mutant that made the tests hang: caught, but reported apart.
    caught = stats["killed"] + stats["timeout"] + stats["segfault"]
    result = {
        "module": module,
        "mutants": judged,
        "not_judged": unjudged,
        **{k: stats[k] for k in ("killed", "timeout", "survived", "no_tests", "suspicious")},
        "score": round(100 * caught / judged, 1) if judged else None,
        "survivors": survivors,
        "tests": tests,
        "workdir": str(work),
    }
    print(json.dumps(result), flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="./dev mutation", description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help="modules to mutate (default: all)")
    parser.add_argument("--list", action="store_true", help="print the modules and their tests")
    parser.add_argument(
        "--again",
        action="store_true",
        help="keep the last run's verdicts and judge only its survivors again, with the "
        "tree's current tests (a module never run is run in full)",
    )
    parser.add_argument(
        "--children", type=int, default=1, help="mutants judged at once (default 1)"
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="keep the last run's verdicts and judge the mutants it left unjudged "
        "(a module never run is run in full)",
    )
    args = parser.parse_args(argv)
    if args.list:
        for module, tests in MODULES.items():
            print(f"{module}: {' '.join(tests)}")
        return 0
    unknown = [m for m in args.modules if m not in MODULES]
    if unknown:
        parser.error(f"unknown module(s) {', '.join(unknown)}; see --list")
    results = [
        run_module(m, sys.executable, args.children, again=args.again, resume=args.resume)
        for m in args.modules or list(MODULES)
    ]
    return 0 if all(r["survived"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
