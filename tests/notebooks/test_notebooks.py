"""The notebooks under ``notebooks/`` run top to bottom from a clean kernel on the demo
data each makes for itself, draw every figure they promise, and print key figures that
make sense (a funnel never grows from one step to the next, maintenance keeps every
record while it shrinks the file count, ...).

They also run on a second, differently shaped lakehouse this module generates (other
event names, no ``platform`` column, a ``device`` column that is often null, no
``session_id``, a funnel step nobody reaches, rejected lines, a day with no events):
every cell either draws its figure or says in words why it cannot, and the key figures
equal counts made here from the generated rows.

Each notebook is executed with nbclient on a ``python3`` kernel whose interpreter is this
test's own (``sys.executable``: the venv with the project installed), whatever kernelspecs
the machine has. The kernel gets no ``LAKEHOUSE_*``/``PYICEBERG_*`` variable, so the
notebooks make their temporary demo lakehouse (inside pytest's tmp folder). One more run
of the funnels notebook reads a lakehouse served by a real Trino, so that its Trino cell
is executed too.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbformat import NotebookNode

from tests.support.components import free_port, unavailable

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
KERNEL_NAME = "python3"
CELL_TIMEOUT = 240  # seconds per cell; a cell takes a few seconds, the data setup up to ~30
STARTUP_TIMEOUT = 120
IGNORED_ENV = ("LAKEHOUSE_", "PYICEBERG_", "MPLBACKEND")

# notebook -> figures (image/png outputs) it must draw, one per cell that calls plt.show()
EXPECTED_FIGURES = {
    "01_exploring_events.ipynb": 4,
    "02_funnels.ipynb": 4,
    "03_table_health.ipynb": 3,
    "04_rejects_and_lateness.ipynb": 2,
}
NO_FIGURE = "no figure:"  # how a plotting cell says why it drew nothing


@dataclass(frozen=True)
class Executed:
    notebook: NotebookNode
    seconds: float
    saved_to: Path

    @property
    def text(self) -> str:
        """Everything the cells printed or displayed as text, in order."""
        parts = []
        for cell in self.notebook.cells:
            for out in cell.get("outputs", []):
                if out.output_type == "stream":
                    parts.append(out.text)
                elif "text/plain" in out.get("data", {}):
                    parts.append(out.data["text/plain"])
        return "\n".join(parts)

    def figures_per_cell(self) -> list[tuple[int, str, int]]:
        """(cell index, first line, PNG outputs) for every code cell."""
        return [
            (
                i,
                cell.source.splitlines()[0] if cell.source else "",
                sum("image/png" in out.get("data", {}) for out in cell.get("outputs", [])),
            )
            for i, cell in enumerate(self.notebook.cells)
            if cell.cell_type == "code"
        ]

    def line(self, pattern: str) -> re.Match[str]:
        match = re.search(pattern, self.text, re.MULTILINE)
        assert match, f"no output line matches {pattern!r} in {self.saved_to}"
        return match


def ints(text: str) -> list[int]:
    return [int(n.replace(",", "")) for n in re.findall(r"\d[\d,]*", text)]


def non_increasing(values: list[int]) -> bool:
    return all(a >= b for a, b in itertools.pairwise(values))


@pytest.fixture(scope="module")
def kernel_specs(tmp_path_factory: pytest.TempPathFactory) -> KernelSpecManager:
    """Only a ``python3`` kernelspec that runs this interpreter (the venv's), so neither a
    user-level ``python3`` kernelspec nor ``python`` on PATH decides which Python runs."""
    root = tmp_path_factory.mktemp("kernels")
    spec = root / KERNEL_NAME
    spec.mkdir()
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "Python 3 (lakehouse venv)",
                "language": "python",
            }
        )
    )
    return KernelSpecManager(kernel_dirs=[str(root)])


def kernel_env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(IGNORED_ENV)}
    env["TMPDIR"] = str(tmp)  # the notebooks' temporary lakehouses land in pytest's tmp
    env.update(extra)
    return env


def execute(name: str, specs: KernelSpecManager, tmp: Path, **env: str) -> Executed:
    """Run the notebook from a clean kernel; the executed copy is saved in ``tmp``."""
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    km = AsyncKernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=specs)
    km.shutdown_wait_time = 60.0  # a loaded machine: let the kernel exit (and run atexit) itself
    client = NotebookClient(
        notebook,
        km=km,
        timeout=CELL_TIMEOUT,
        startup_timeout=STARTUP_TIMEOUT,
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    saved = tmp / name
    started = time.perf_counter()
    try:
        # cleanup_kc: shut the kernel down afterwards although the client does not own its manager
        client.execute(env=kernel_env(tmp, **env), cleanup_kc=True)
    finally:
        nbformat.write(notebook, saved)  # outputs so far, to look at when a cell failed
    seconds = time.perf_counter() - started
    print(f"{name}: executed in {seconds:.1f} s (copy with outputs: {saved})")
    return Executed(notebook, seconds, saved)


def cell_text(cell: NotebookNode) -> str:
    return "".join(out.text for out in cell.get("outputs", []) if out.output_type == "stream")


def check_figures(run: Executed, name: str, expected: int | None = None) -> None:
    """Every plotting cell draws exactly one figure, or none and says why (a line
    starting "no figure:"); other cells draw nothing; the run drew ``expected`` figures
    (all the notebook promises, by default)."""
    plotting = {i for i, cell in enumerate(run.notebook.cells) if "plt.show()" in cell.source}
    for i, first, pngs in run.figures_per_cell():
        said = any(
            line.startswith(NO_FIGURE) for line in cell_text(run.notebook.cells[i]).splitlines()
        )
        if i in plotting and pngs == 0:
            assert said, f"cell {i} ({first!r}) drew no figure and did not say why"
        else:
            want = 1 if i in plotting else 0
            assert pngs == want and not said, f"cell {i} ({first!r}) drew {pngs}, said {said}"
    total = sum(p for _, _, p in run.figures_per_cell())
    assert total == (EXPECTED_FIGURES[name] if expected is None else expected), total


def check_exploring(run: Executed) -> None:
    late, total = ints(run.line(r"^late events: ([\d,]+) of ([\d,]+)").group(0))
    assert 0 < late < total
    hours = ints(run.line(r"^(\d+) hours; events per hour").group(0))[0]
    assert hours >= 24
    p50, p99 = run.line(
        r"^delay quantiles: p50 ([\d.]+) s, p90 [\d.]+ [sh], p99 ([\d.]+) h"
    ).groups()
    assert float(p50) < 60 and float(p99) > 1  # online delivery in seconds, offline in hours
    shares = re.findall(r"^late share (\w+): ([\d.]+)% \(([\d,]+) of ([\d,]+)\)", run.text, re.M)
    assert {platform for platform, *_ in shares} == {"ios", "android", "web"}
    assert sum(int(n.replace(",", "")) for *_, n in shares) == total
    assert sum(int(n.replace(",", "")) for *_, n, _ in shares) == late
    run.line(
        r"^sequence check: event_seq is 1\.\.\d+: True; millis_since_prev never negative: True$"
    )
    shown = run.line(r"^user-\d+: (\d+) events in (\d+) sessions, (\d+) late")
    assert int(shown.group(3)) > 0  # the user shown has late events


def check_funnels(run: Executed, *, trino: bool) -> None:
    def steps(label: str) -> list[int]:
        found = ints(run.line(rf"^users per step \({label}\): \[([\d, ]+)\]$").group(1))
        assert len(found) == 4 and found[0] > 0 and non_increasing(found), (label, found)
        return found

    window, strict = steps("window mode"), steps("strict mode")
    assert strict[0] == window[0] and all(s <= w for s, w in zip(strict, window, strict=True))
    assert strict[-1] < window[-1]  # the demo's browsing between steps breaks strict chains
    for platform in ("ios", "android", "web"):
        assert steps(platform)[0] <= window[0]
    if not trino:  # the notebook's own 50,000-event demo (the Trino run's is smaller)
        # the demo's users keep their device: each platform converts about as the whole does
        overall, *per_platform = re.findall(
            r"(\w+) ([\d.]+)%", run.line(r"^conversion to the last step: overall .*$").group(0)
        )
        assert {p for p, _ in per_platform} == {"ios", "android", "web"}
        assert all(abs(float(v) - float(overall[1])) < 5 for _, v in per_platform), per_platform
    medians = re.findall(
        r"^median time to \w+: ([\d.]+) s from user_levels, [\d.]+ s in the funnel result, "
        r"same: True$",
        run.text,
        re.M,
    )
    assert len(medians) == 3
    assert non_increasing([-float(m) for m in medians])  # later steps take longer
    if trino:
        assert steps("trino") == window
        run.line(r"^trino equals polars: True$")
    else:
        run.line(r"^Trino is not running for .*: skipping the Trino funnel$")


def check_table_health(run: Executed) -> None:
    files_before, files_after = ints(run.line(r"^data files: \d+ before, \d+ after$").group(0))
    assert 0 < files_after < files_before
    max_before, max_after = ints(run.line(r"^files per partition, max: .*$").group(0))
    assert max_after == 1 < max_before  # every closed hour compacted into one file
    records = ints(run.line(r"^records: [\d,]+ before, [\d,]+ after$").group(0))
    assert records[0] == records[1] > 0
    counts = dict(
        re.findall(r"(on-time|late|maintenance): (\d+)", run.line(r"^snapshots: .*$").group(0))
    )
    assert all(int(counts.get(c, 0)) > 0 for c in ("on-time", "late", "maintenance")), counts


DEMO_REJECTS = 20  # DemoSpec(events=20_000).malformed_fraction 0.001: bad lines written


def check_rejects(run: Executed) -> None:
    assert ints(run.line(r"^rejected records: [\d,]+$").group(0)) == [DEMO_REJECTS]
    by_kind = [int(n) for n in re.findall(r"^reason '.+': (\d+)$", run.text, re.M)]
    assert sum(by_kind) == DEMO_REJECTS and len(by_kind) == 5  # the demo's five bad lines
    run.line(rf"^{DEMO_REJECTS} of {DEMO_REJECTS} rejects placed by their file's arrival hour$")
    written = run.line(r"records read: [\d,]+ written \(([\d,]+) late\)").group(1)
    late, total = ints(run.line(r"^landing lateness: ([\d,]+) of ([\d,]+) events").group(0))
    assert late == ints(written)[0] > 0 and total == 20_000  # the writer's own count


CHECKS: dict[str, Callable[[Executed], None]] = {
    "01_exploring_events.ipynb": check_exploring,
    "02_funnels.ipynb": lambda run: check_funnels(run, trino=False),
    "03_table_health.ipynb": check_table_health,
    "04_rejects_and_lateness.ipynb": check_rejects,
}


def test_every_notebook_is_checked() -> None:
    assert {p.name for p in NOTEBOOKS.glob("*.ipynb")} == set(EXPECTED_FIGURES) == set(CHECKS)


@pytest.mark.parametrize("name", sorted(EXPECTED_FIGURES))
def test_committed_without_outputs(name: str) -> None:
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(notebook)
    assert notebook.metadata.kernelspec.name == KERNEL_NAME
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, cell.source[:60]
        assert "execution" not in cell.metadata, cell.source[:60]  # nbclient's timings


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPECTED_FIGURES))
def test_notebook_runs(name: str, kernel_specs: KernelSpecManager, tmp_path: Path) -> None:
    run = execute(name, kernel_specs, tmp_path)
    check_figures(run, name)
    CHECKS[name](run)
    # the temporary lakehouse was made under TMPDIR and removed when the kernel stopped
    assert not list(tmp_path.glob("lakehouse-nb*"))


@pytest.fixture(scope="module")
def trino_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int]]:
    """A demo lakehouse and a real Trino serving it (skipped locally, failing in CI, when
    Trino cannot run here)."""
    from lakehouse.demo import DemoSpec, write_landing
    from lakehouse.settings import Settings
    from lakehouse.trino_server import (
        ServerOptions,
        TrinoError,
        find_installation,
        find_java,
        start,
        stop,
    )
    from writers import ingest

    try:
        java = find_java()
    except TrinoError as exc:
        unavailable("Trino", str(exc))
    installation = find_installation()
    if installation is None:
        unavailable("Trino", "not installed (`lakehouse trino install`, or scripts/setup-trino.sh)")
    root = tmp_path_factory.mktemp("trino-notebook")
    settings = Settings(home=root / "home")
    spec = DemoSpec(events=10_000, days=2, anchor="2024-05-03T00:00:00+00:00")
    ingest([str(write_landing(root / "landing", spec).root)], settings)
    port = free_port()
    try:
        start(settings, ServerOptions(port=port, heap="3G"), installation=installation, java=java)
    except TrinoError as exc:
        unavailable("Trino", f"the server did not start: {exc}")
    try:
        yield settings.home, port
    finally:
        stop(settings, port=port)


@pytest.mark.slow
@pytest.mark.trino
def test_funnels_notebook_on_trino(
    trino_home: tuple[Path, int], kernel_specs: KernelSpecManager, tmp_path: Path
) -> None:
    home, port = trino_home
    run = execute(
        "02_funnels.ipynb",
        kernel_specs,
        tmp_path,
        LAKEHOUSE_HOME=str(home),
        LAKEHOUSE_TRINO_PORT=str(port),
        NB_STEPS="app_open,view_product,add_to_cart,checkout",  # else the most frequent types
    )
    check_figures(run, "02_funnels.ipynb")
    run.line(rf"^reading the existing lakehouse: home {re.escape(str(home))},")
    check_funnels(run, trino=True)


# --- a lakehouse unlike the demo --------------------------------------------------------

ODD_DAY1 = datetime(2024, 5, 1, 10, tzinfo=UTC)
ODD_DAY3 = datetime(2024, 5, 3, 10, tzinfo=UTC)
EMPTY_RANGE = {"NB_START": "2024-05-02T00:00Z", "NB_END": "2024-05-03T00:00Z"}  # day 2: nothing
ODD_STEPS = ["open", "browse", "teleport"]  # nobody ever does "teleport"
ODD_BAD = [
    '{"event_id": "x1", "user_id": ',
    '{"event_id": "x2", ',
    "{not json",
    '{"event_id": "x3"}',
]


@dataclass(frozen=True)
class OddLakehouse:
    home: Path
    rows: list[dict[str, str]]
    bad_lines: int


def odd_rows() -> list[dict[str, str]]:
    """30 users on day 1 (open, every second one browses 2 min later, some pay, all log
    out) and 10 more on day 3 who only open; ``device`` is "tv" for even users and absent
    otherwise; no platform, no session_id; a quarter of the users deliver 5 h late, a
    quarter 80 min late (late or not by the hour rule, depending on the minute)."""
    rows: list[dict[str, str]] = []

    def add(user: int, kind: str, at: datetime) -> None:
        # 5 h: late; 80 min: late only when the client hour had closed an hour before
        # arrival (10:50 -> 12:10 is late, 10:05 -> 11:25 is not); 10 s: on time
        delay = {0: timedelta(hours=5), 1: timedelta(minutes=80)}.get(
            user % 4, timedelta(seconds=10)
        )
        row = {
            "event_id": f"odd-{len(rows):04d}",
            "user_id": f"member-{user:03d}",
            "event_type": kind,
            "client_ts": at.isoformat().replace("+00:00", "Z"),
            "server_ts": (at + delay).isoformat().replace("+00:00", "Z"),
        }
        if user % 2 == 0:
            row["device"] = "tv"
        rows.append(row)

    for u in range(30):
        t = ODD_DAY1 + timedelta(minutes=7 * u)
        add(u, "open", t)
        if u % 2 == 0:
            add(u, "browse", t + timedelta(minutes=2))
        if u % 3 == 0:
            add(u, "pay", t + timedelta(minutes=4))
        add(u, "logout", t + timedelta(minutes=5))
    for u in range(100, 110):
        add(u, "open", ODD_DAY3 + timedelta(minutes=3 * u))
    return rows


def is_late(row: dict[str, str]) -> bool:
    """The lateness rule, by hand: received at or after the client hour's end + 1 h."""
    client = datetime.fromisoformat(row["client_ts"].replace("Z", "+00:00"))
    server = datetime.fromisoformat(row["server_ts"].replace("Z", "+00:00"))
    return client.replace(minute=0, second=0, microsecond=0) + timedelta(hours=2) <= server


def test_the_odd_rows_tell_the_hour_rule_from_a_fixed_delay() -> None:
    rows = odd_rows()
    slow = [r for r in rows if int(r["user_id"][-3:]) % 4 == 1 and int(r["user_id"][-3:]) < 30]
    assert len(slow) > 10 and any(map(is_late, slow)) and not all(map(is_late, slow))


@pytest.fixture(scope="module")
def odd_home(tmp_path_factory: pytest.TempPathFactory) -> OddLakehouse:
    from lakehouse.settings import Settings
    from writers import ingest

    root = tmp_path_factory.mktemp("odd")
    rows = odd_rows()
    half = len(rows) // 2
    for k, (part, bad) in enumerate(((rows[:half], ODD_BAD[:2]), (rows[half:], ODD_BAD[2:]))):
        folder = root / "landing" / f"2024/05/0{2 * k + 1}/12"
        folder.mkdir(parents=True)
        lines = [json.dumps(r) for r in part] + bad
        (folder / f"part-{k}.ndjson").write_text("\n".join(lines) + "\n")
    result = ingest([str(root / "landing")], Settings(home=root / "home"))
    assert result.records_written == len(rows) and result.records_rejected == len(ODD_BAD)
    return OddLakehouse(root / "home", rows, len(ODD_BAD))


def odd_funnel(rows: list[dict[str, str]]) -> list[int]:
    """Users per step of ODD_STEPS, window 1 h, counted by hand from the rows."""
    at = {
        (r["user_id"], r["event_type"]): datetime.fromisoformat(r["client_ts"][:-1]) for r in rows
    }
    openers = {u for u, kind in at if kind == "open"}
    browsed = {
        u
        for u in openers
        if (u, "browse") in at
        and timedelta(0) <= at[(u, "browse")] - at[(u, "open")] <= timedelta(hours=1)
    }
    return [len(openers), len(browsed), 0]


ODD_RUNS = {
    # (notebook, variant) -> (extra environment, figures drawn)
    ("01_exploring_events.ipynb", "odd"): ({}, 3),  # no platform column: no late-share figure
    ("02_funnels.ipynb", "odd"): ({"NB_STEPS": ",".join(ODD_STEPS), "NB_BREAKDOWN": "device"}, 4),
    ("04_rejects_and_lateness.ipynb", "odd"): ({}, 2),
    ("01_exploring_events.ipynb", "empty"): (EMPTY_RANGE, 0),
    ("02_funnels.ipynb", "empty"): (EMPTY_RANGE, 0),
    ("04_rejects_and_lateness.ipynb", "empty"): (EMPTY_RANGE, 1),  # rejects: not by client time
}


def check_odd(run: Executed, name: str, variant: str, odd: OddLakehouse) -> None:
    rows = odd.rows
    if variant == "empty":
        run.line(r"^client-time range: \[2024-05-02T00:00:00\+00:00, 2024-05-03T00:00:00\+00:00\)$")
        if name != "04_rejects_and_lateness.ipynb":
            run.line(r"^snapshot \d+; 0 events in \[2024-05-02")
        else:
            assert ints(run.line(r"^rejected records: \d+$").group(0)) == [odd.bad_lines]
            run.line(r"^no figure: no events in the client-time range")
        return
    if name == "01_exploring_events.ipynb":
        late, total = ints(run.line(r"^late events: ([\d,]+) of ([\d,]+)").group(0))
        assert (late, total) == (sum(map(is_late, rows)), len(rows))
        run.line(r"^no figure: the table has no column 'platform'")
        run.line(r"^member-\d+: \d+ events in 0 sessions")
        run.line(
            r"^sequence check: event_seq is 1\.\.\d+: True; millis_since_prev never negative: True$"
        )
    elif name == "02_funnels.ipynb":
        run.line(r"^steps \(given\): open, browse, teleport; window 1h$")
        run.line(r"^step 'teleport': no event of this type in the range, so nobody reaches it$")
        window = ints(run.line(r"^users per step \(window mode\): \[([\d, ]+)\]$").group(1))
        assert window == odd_funnel(rows), window
        tv = ints(run.line(r"^users per step \(tv\): \[([\d, ]+)\]$").group(1))
        none = ints(run.line(r"^users per step \(\(none\)\): \[([\d, ]+)\]$").group(1))
        devices = {
            r["user_id"] for r in rows if r.get("device") == "tv" and r["event_type"] == "open"
        }
        assert tv == [len(devices), window[1], 0]  # only even (tv) users browse
        assert none == [window[0] - len(devices), 0, 0]
        run.line(
            r"^median time to browse: 120\.0 s from user_levels, 120\.0 s in the funnel result, same: True$"
        )
        run.line(r"^median time to teleport: nobody reached it$")
    else:
        assert ints(run.line(r"^rejected records: \d+$").group(0)) == [odd.bad_lines]
        by_kind = sorted(int(n) for n in re.findall(r"^reason '.+': (\d+)$", run.text, re.M))
        assert sum(by_kind) == odd.bad_lines and len(by_kind) >= 2
        late, total = ints(run.line(r"^landing lateness: ([\d,]+) of ([\d,]+) events").group(0))
        assert (late, total) == (sum(map(is_late, rows)), len(rows))


@pytest.mark.slow
@pytest.mark.parametrize(("name", "variant"), sorted(ODD_RUNS), ids=lambda v: str(v))
def test_notebook_on_a_differently_shaped_lakehouse(
    name: str, variant: str, odd_home: OddLakehouse, kernel_specs: KernelSpecManager, tmp_path: Path
) -> None:
    env, figures = ODD_RUNS[(name, variant)]
    run = execute(name, kernel_specs, tmp_path, LAKEHOUSE_HOME=str(odd_home.home), **env)
    check_figures(run, name, figures)
    run.line(rf"^reading the existing lakehouse: home {re.escape(str(odd_home.home))},")
    check_odd(run, name, variant, odd_home)
