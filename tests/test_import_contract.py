"""The house's floors, kept by a test (ARCHITECTURE.md, "Floors").

Every import between the project's own modules is read from the source with ``ast``
(module level and inside functions alike, ``TYPE_CHECKING`` blocks excepted: they never
run) and checked against the floors:

* the **ground** (`lakehouse` core modules and `catalog/`) imports nothing above it;
* `writers/` and `maintenance/` import the ground only, never each other, the engines,
  the readers or the CLI;
* the **readers** (`lakehouse.read`, `lakehouse.funnels`, `lakehouse.health`) import the
  ground and the middle floor only;
* the **engines** (`lakehouse.engines`, and the Trino server tooling) do not import the CLI;
* nothing imports the CLI but the CLI, and no module is part of an import circle.

The floor of a module is decided by :func:`floor_of`; a new package has to be placed
there, which is the point: a new room is a decision, not an accident.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("lakehouse", "writers", "maintenance", "catalog")

GROUND, MIDDLE, READERS, ENGINES, ROOF = 0, 1, 2, 3, 4
FLOOR_NAMES = {
    GROUND: "ground",
    MIDDLE: "middle",
    READERS: "readers",
    ENGINES: "engines",
    ROOF: "roof",
}

# Packages under lakehouse/ that stand above the ground, by prefix (longest match wins).
UPPER = {
    "lakehouse.read": READERS,
    "lakehouse.funnels": READERS,
    "lakehouse.health": READERS,
    "lakehouse.engines": ENGINES,
    "lakehouse.trino_server": ENGINES,
    "lakehouse.cli": ROOF,
    "lakehouse": ROOF,  # lakehouse/__init__.py: the public read API, resolved lazily
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            found[module_name(path)] = path
    return found


def floor_of(module: str) -> int:
    top = module.split(".")[0]
    if top in ("writers", "maintenance"):
        return MIDDLE
    if top == "catalog":
        return GROUND
    for prefix in sorted(UPPER, key=len, reverse=True):
        if module == prefix or (prefix != "lakehouse" and module.startswith(prefix + ".")):
            return UPPER[prefix]
    return GROUND  # lakehouse.<core module>


def _type_checking_lines(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else getattr(test, "attr", None)
            if name == "TYPE_CHECKING":
                for child in node.body:
                    for sub in ast.walk(child):
                        if hasattr(sub, "lineno"):
                            lines.add(sub.lineno)
    return lines


def imports_of(module: str, path: Path, known: set[str]) -> Iterator[tuple[str, int]]:
    """The project modules that `module` imports, with the line of each import."""
    tree = ast.parse(path.read_text(), filename=str(path))
    skipped = _type_checking_lines(tree)
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skipped:
            continue
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                if not is_package:
                    anchor = anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        for target in targets:
            # the longest project module that the import names
            parts = target.split(".")
            while parts and ".".join(parts) not in known:
                parts.pop()
            if parts:
                resolved = ".".join(parts)
                if resolved != module:
                    yield resolved, node.lineno
                    break


def import_graph() -> dict[str, dict[str, int]]:
    modules = project_modules()
    known = set(modules)
    return {m: dict(imports_of(m, p, known)) for m, p in modules.items()}


def floor_violations(graph: dict[str, dict[str, int]]) -> list[str]:
    bad = []
    for source, targets in graph.items():
        source_floor = floor_of(source)
        source_top = source.split(".")[0]
        for target, line in targets.items():
            target_floor = floor_of(target)
            target_top = target.split(".")[0]
            where = f"{source} (line {line}) imports {target}"
            if target_floor > source_floor:
                bad.append(
                    f"{where}: the {FLOOR_NAMES[source_floor]} floor imports the "
                    f"{FLOOR_NAMES[target_floor]} floor above it"
                )
            elif source_floor == MIDDLE and target_floor == MIDDLE and source_top != target_top:
                bad.append(f"{where}: writers and maintenance never import each other")
    return bad


def circles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, {}):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_fault_points_stand_on_the_ground() -> None:
    """``lakehouse.faults`` is called from writers/ and maintenance/: it must stay on the
    ground floor and import nothing of the project."""
    graph = import_graph()
    assert floor_of("lakehouse.faults") == GROUND
    assert graph["lakehouse.faults"] == {}
    assert any(
        "lakehouse.faults" in targets for s, targets in graph.items() if s.startswith("writers")
    )


def test_the_graph_is_read_from_the_real_tree() -> None:
    graph = import_graph()

    # arrows that certainly exist: if the reader broke, they would vanish
    def arrows(source: str, target: str) -> bool:
        return any(
            s.startswith(source) and any(t.startswith(target) for t in targets)
            for s, targets in graph.items()
        )

    assert arrows("lakehouse.cli", "writers")
    assert arrows("writers", "lakehouse.settings")
    assert arrows("maintenance", "lakehouse")
    assert len(graph) > 80


def test_floors_are_kept() -> None:
    assert floor_violations(import_graph()) == []


def test_no_import_circles() -> None:
    assert circles(import_graph()) == []


@pytest.mark.parametrize(
    ("source", "target", "expected"),
    [
        ("lakehouse.settings", "lakehouse.cli.main", "ground floor imports the roof"),
        ("catalog.sql", "writers.commit", "ground floor imports the middle"),
        ("writers.commit", "maintenance.plan", "never import each other"),
        ("maintenance.plan", "lakehouse.engines.trino", "middle floor imports the engines"),
        ("lakehouse.read", "lakehouse.cli.common", "readers floor imports the roof"),
    ],
)
def test_the_checker_catches_a_planted_violation(source: str, target: str, expected: str) -> None:
    graph = {source: {target: 1}, target: {}}
    found = floor_violations(graph)
    assert len(found) == 1
    assert expected.split()[-1] in found[0] and expected.split()[0] in found[0]


def test_the_checker_catches_a_planted_circle() -> None:
    graph = {"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {"a": 1}}
    assert circles(graph) == [["a", "b", "c"]]
