"""The installed packages need nothing beyond what ``pyproject.toml`` declares.

* Every module the packages import (at the top or inside a function) belongs to a
  distribution listed in ``[project] dependencies``: not to a dev extra, not only to a
  dependency of a dependency.
* A clean virtualenv with the project installed WITHOUT extras runs ``lakehouse demo`` and
  ``lakehouse ingest``; the tables they write are read back with this environment's own
  pyiceberg and compared with the input files.
"""

from __future__ import annotations

import ast
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pyarrow.compute as pc
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("lakehouse", "writers", "maintenance", "catalog")


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared_dependencies() -> set[str]:
    """Normalised distribution names of ``[project] dependencies`` (no extras)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = set()
    for requirement in project["dependencies"]:
        match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
        assert match, requirement
        names.add(_normal(match.group(1)))
    return names


def imported_modules() -> dict[str, list[str]]:
    """Top-level third-party modules the packages import, with the files that do."""
    found: dict[str, list[str]] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top in PACKAGES or top in sys.stdlib_module_names or top == "__future__":
                        continue
                    found.setdefault(top, []).append(str(path.relative_to(ROOT)))
    return found


def test_the_scan_sees_the_imports_it_must() -> None:
    """The scan itself works: it finds imports at the top and inside functions."""
    found = imported_modules()
    assert any(p.startswith("writers/") for p in found["numpy"])  # top-level imports
    assert "catalog/resolve.py" in found["sqlalchemy"]  # import inside a function
    assert "os" not in found and "lakehouse" not in found


def test_every_imported_module_is_a_declared_dependency() -> None:
    declared = declared_dependencies()
    owners = packages_distributions()
    missing = {}
    for module, files in sorted(imported_modules().items()):
        distributions = {_normal(d) for d in owners.get(module, [])}
        if not distributions & declared:
            missing[module] = (sorted(distributions) or ["<not installed>"], sorted(set(files)))
    assert not missing, f"imported but not declared in [project] dependencies: {missing}"


# --- a clean install --------------------------------------------------------------------

_BAD_PREFIXES = ("broken-", "nouser-", "badts-", "type-")


def _uv() -> str:
    beside = Path(sys.executable).with_name("uv")
    found = str(beside) if beside.exists() else shutil.which("uv")
    if found is None:
        message = "uv is needed to build the clean environment (./dev setup installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment of a process that must see only the clean virtualenv."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("LAKEHOUSE_", "PYICEBERG_", "PYTHON", "VIRTUAL_ENV", "CONDA"))
    }
    return {**env, **extra}


def _run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=cwd, env=_clean_env(**env), capture_output=True, text=True, timeout=900
    )


def _read_events(home: Path) -> list[str]:
    """The event ids of ``analytics.events`` under ``home``, read with this environment's
    pyiceberg straight from the SQLite catalog file."""
    from pyiceberg.catalog.sql import SqlCatalog

    catalog = SqlCatalog(
        "lakehouse",
        uri=f"sqlite:///{home / 'catalog.db'}",
        warehouse=f"file://{home / 'warehouse'}",
    )
    table = catalog.load_table("analytics.events").scan(selected_fields=("event_id",)).to_arrow()
    ids: list[str] = pc.cast(table.column("event_id"), "string").to_pylist()
    return ids


def _landing_ids(root: Path) -> tuple[set[str], int]:
    """Distinct event ids of the well-formed demo events in a landing zone, and the number
    of lines that are not such events (the demo's deliberately bad lines)."""
    good: set[str] = set()
    bad = 0
    for path in sorted(root.rglob("*.ndjson.gz")):
        for line in gzip.decompress(path.read_bytes()).decode().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                bad += 1
                continue
            if not isinstance(record, dict) or str(record["event_id"]).startswith(_BAD_PREFIXES):
                bad += 1
                continue
            good.add(record["event_id"])
    return good, bad


@pytest.mark.slow
def test_a_clean_install_without_extras_runs_the_demo_and_an_ingest(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    # built from a copy, so the build leaves nothing in the checkout
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    install = _run([_uv(), "pip", "install", "--python", str(python), str(source)], tmp_path)
    assert install.returncode == 0, install.stderr
    # installed as a copy (not the checkout on sys.path), without the dev extras
    where = _run(
        [str(python), "-c", "import writers, lakehouse; print(writers.__file__)"], tmp_path
    )
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(venv), where.stdout
    for dev_only in ("pytest", "chdb", "moto"):
        probe = _run([str(python), "-c", f"import {dev_only}"], tmp_path)
        assert probe.returncode != 0, f"{dev_only} is installed: not a clean install"
    lakehouse = str(venv / "bin" / "lakehouse")

    # the demo: 20,000 events, some sent twice, a few malformed lines
    demo_home = tmp_path / "demo-home"
    demo = _run(
        [lakehouse, "demo", "--events", "20000", "--json", "--home", str(demo_home)], tmp_path
    )
    assert demo.returncode == 0, demo.stderr[-3000:]
    report = json.loads(demo.stdout)
    good, bad = _landing_ids(demo_home / "landing" / "demo-7-20000")
    assert len(good) == 20_000 and bad > 0
    ids = _read_events(demo_home)
    assert len(ids) == len(set(ids)) == 20_000
    assert set(ids) == good
    assert report["ingest"]["records_written"] == 20_000
    assert report["ingest"]["records_rejected"] == bad
    # SQL without a server: duckdb is a runtime dependency
    counted = _run(
        [lakehouse, "sql", "SELECT count(*) AS n FROM events", "--json", "--home", str(demo_home)],
        tmp_path,
    )
    assert counted.returncode == 0, counted.stderr[-3000:]
    assert json.loads(counted.stdout) == [{"n": 20_000}]

    # an ingest of one small NDJSON file, with one bad line
    home = tmp_path / "home"
    landing = tmp_path / "landing"
    landing.mkdir()
    lines = [
        json.dumps(
            {
                "event_id": f"e{i}",
                "user_id": f"u{i % 7}",
                "event_type": "view",
                "client_ts": f"2026-01-01T00:{i // 60:02d}:{i % 60:02d}Z",
                "price": i * 0.5,
            }
        )
        for i in range(500)
    ]
    lines.insert(250, '{"event_id": "no-time", "user_id": "u", "event_type": "view"}')
    (landing / "events.ndjson").write_text("\n".join(lines) + "\n")
    init = _run([lakehouse, "init", "--home", str(home)], tmp_path)
    assert init.returncode == 0, init.stderr[-3000:]
    ingest = _run([lakehouse, "ingest", str(landing), "--json", "--home", str(home)], tmp_path)
    assert ingest.returncode == 1, ingest.stderr[-3000:]  # 1: some records rejected
    result = json.loads(ingest.stdout)
    assert (result["records_written"], result["records_rejected"]) == (500, 1)
    ids = _read_events(home)
    assert sorted(ids) == sorted(f"e{i}" for i in range(500))
