"""Mutation testing of the modules that decide what lands where (``./dev mutation``).

    ./dev mutation                      # every module below, one after the other
    ./dev mutation writers/dedupe.py    # one module (several may be given)
    ./dev mutation --list               # the modules and the tests that judge each

Each module is mutated by mutmut (pinned in the ``dev`` extra) in a scratch copy of the
tree (``.mutation/<module>/``), so the working tree is never edited; every mutant is
judged by a small set of fast tests chosen for that module (no ``slow``, ``trino`` or
``postgres`` tests). The score is (killed + suspicious + timeouts) / every mutant judged (mutmut's
"suspicious" is a kill that took long; a timeout is a hang the tests caught);
surviving mutants are listed with ``mutmut show ID`` run in the scratch copy. Run it on
an idle machine: every mutant starts pytest once.
"""

from __future__ import annotations

import argparse
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
        "tests/writers/test_lateness.py",
        "tests/test_hours.py",
    ],
    "writers/normalize.py": ["tests/writers/test_normalize.py"],
    "writers/writer.py": ["tests/writers/test_writer.py", "tests/writers/test_buffer.py"],
    "writers/commit.py": [
        "tests/writers/test_commit_races.py",
        "tests/writers/test_writer.py",
        "tests/writers/test_storage_retries.py",
    ],
    "maintenance/plan.py": [
        "tests/maintenance/test_compaction.py",
        "tests/maintenance/test_hot_boundary.py",
        "tests/maintenance/test_plan_snapshot.py",
    ],
    "maintenance/expire.py": ["tests/maintenance/test_expire.py"],
    "maintenance/orphans.py": [
        "tests/maintenance/test_orphans.py",
        "tests/maintenance/test_orphan_window.py",
    ],
    "maintenance/replace.py": [
        "tests/catalog/test_private_api.py",
        "tests/maintenance/test_concurrency.py",
    ],
}


def _copy_tree(dest: Path) -> None:
    """The tracked and new (not ignored) files of the tree, copied to ``dest``."""
    if dest.exists():
        shutil.rmtree(dest)
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout.split("\n")  # fmt: skip
    for name in filter(None, listed):
        source = ROOT / name
        if not source.is_file() or name.startswith(".mutation/"):
            continue
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


def _count(work: Path, status: str, mutmut: str) -> list[str]:
    out = subprocess.run(
        [mutmut, "result-ids", status], cwd=work, capture_output=True, text=True
    ).stdout
    return re.findall(r"\d+", out)


def run_module(module: str, python: str) -> dict[str, object]:
    tests = [t for t in MODULES[module] if (ROOT / t).exists()]
    work = SCRATCH / module.replace("/", "_").removesuffix(".py")
    _copy_tree(work)
    mutmut = str(Path(python).with_name("mutmut"))
    runner = (
        f"{python} -m pytest -x -q -p no:cacheprovider -p no:randomly "
        f"-m '{MARKERS}' {' '.join(tests)}"
    )
    env = {**os.environ, "PYTHONPATH": str(work), "POLARS_ICEBERG_PLANNER": "pyiceberg"}
    env.pop("LAKEHOUSE_HOME", None)
    print(f"[mutation] {module}: judged by {' '.join(tests)}", file=sys.stderr, flush=True)
    subprocess.run(
        [mutmut, "run", "--paths-to-mutate", module, "--tests-dir", "tests", "--runner", runner,
         "--simple-output", "--no-progress"],
        cwd=work, env=env,
    )  # fmt: skip
    counts = {s: _count(work, s, mutmut) for s in ("killed", "survived", "timeout", "suspicious")}
    judged = sum(len(v) for v in counts.values())
    # mutmut's "suspicious" is a kill that took long; a timeout is a mutant that made the
    # tests hang, which they noticed (counted as killed, reported apart).
    killed = len(counts["killed"]) + len(counts["suspicious"]) + len(counts["timeout"])
    result = {
        "module": module,
        "mutants": judged,
        "killed": len(counts["killed"]),
        "timeout": len(counts["timeout"]),
        "survived": len(counts["survived"]),
        "suspicious": len(counts["suspicious"]),
        "score": round(100 * killed / judged, 1) if judged else None,
        "survivors": counts["survived"],
        "tests": tests,
        "workdir": str(work),
    }
    print(json.dumps(result), flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="./dev mutation", description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help="modules to mutate (default: all)")
    parser.add_argument("--list", action="store_true", help="print the modules and their tests")
    args = parser.parse_args(argv)
    if args.list:
        for module, tests in MODULES.items():
            print(f"{module}: {' '.join(tests)}")
        return 0
    unknown = [m for m in args.modules if m not in MODULES]
    if unknown:
        parser.error(f"unknown module(s) {', '.join(unknown)}; see --list")
    results = [run_module(m, sys.executable) for m in args.modules or list(MODULES)]
    return 0 if all(r["survived"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
