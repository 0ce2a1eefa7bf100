"""What every part of the campaign shares: the figures it reports, the catalog a run
writes to (embedded SQLite or a real PostgreSQL), the ``lakehouse`` CLI in a subprocess,
and reading a table back the way a reader would.

The campaign runs in processes of its own (the CLI, writer workers) so SIGKILL and
catalog restarts hit real processes; the checks run in the calling process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TextIO

import pyarrow as pa
import pyarrow.parquet as pq
from pyiceberg.table import Table

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable

# --- figures ---------------------------------------------------------------------------

_MAX_FIELDS = ("concurrent_writers",)


SUMMARIES: list[str] = []
"""The short mode's figures, one summary per test, printed at the end of the pytest run
(``tests/reliability/conftest.py``)."""


@dataclass
class Figures:
    """What a part of the campaign did and found. ``losses``, ``duplicates``,
    ``unreadable_snapshots`` and ``invariant_breaks`` must all stay 0; ``violations``
    says what broke, one line each."""

    runs: int = 0
    kills: int = 0
    events: int = 0
    commits: int = 0
    concurrent_writers: int = 0
    minutes_soaked: float = 0.0
    reader_checks: int = 0
    snapshots_read: int = 0
    fuzz_cases: int = 0
    catalog_restarts: int = 0
    commit_errors_retried: int = 0
    hostile_cases: int = 0
    kills_in_commit_window: int = 0
    kills_before_any_write: int = 0
    losses: int = 0
    duplicates: int = 0
    unreadable_snapshots: int = 0
    invariant_breaks: int = 0
    violations: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def violation(self, kind: str, message: str, count: int = 1) -> None:
        """Record a broken promise: ``kind`` is losses, duplicates,
        unreadable_snapshots or invariant_breaks."""
        setattr(self, kind, getattr(self, kind) + count)
        if len(self.violations) < 200:
            self.violations.append(f"{kind}: {message}")

    def note(self, message: str) -> None:
        if message not in self.notes and len(self.notes) < 100:
            self.notes.append(message)

    @property
    def ok(self) -> bool:
        return not (
            self.losses or self.duplicates or self.unreadable_snapshots or self.invariant_breaks
        )

    def merge(self, other: Figures) -> Figures:
        for f in fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            if isinstance(mine, list):
                mine.extend(x for x in theirs if x not in mine)
            elif f.name in _MAX_FIELDS:
                setattr(self, f.name, max(mine, theirs))
            else:
                setattr(self, f.name, mine + theirs)
        return self

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def summary(self, title: str = "reliability campaign") -> str:
        rows = [(f.name.replace("_", " "), getattr(self, f.name)) for f in fields(self)]
        width = max(len(k) for k, _ in rows)
        out = [title]
        for key, value in rows:
            if isinstance(value, list):
                continue
            shown = f"{value:.1f}" if isinstance(value, float) else f"{value:,}"
            out.append(f"  {key.ljust(width)}  {shown}")
        out.append(f"  {'result'.ljust(width)}  {'OK' if self.ok else 'FAILED'}")
        out += [f"  ! {v}" for v in self.violations[:50]]
        out += [f"  note: {n}" for n in self.notes[:30]]
        return "\n".join(out)


# --- where a run writes ------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A catalog for one run: the embedded SQLite catalog under ``home``, or a named
    pyiceberg catalog configured by ``env`` (PostgreSQL)."""

    home: Path
    env: Mapping[str, str] = field(default_factory=dict)
    kind: str = "sqlite"

    def process_env(self, **extra: str) -> dict[str, str]:
        """The environment of a subprocess: ours without ambient LAKEHOUSE_*/PYICEBERG_*
        settings, plus the target's."""
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("LAKEHOUSE_", "PYICEBERG_"))
        }
        env["LAKEHOUSE_HOME"] = str(self.home)
        env["POLARS_ICEBERG_PLANNER"] = "pyiceberg"
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        env.update(self.env)
        env.update(extra)
        return env

    def settings(self) -> Any:
        from lakehouse.settings import Settings

        return Settings.from_env(self.process_env())

    @contextmanager
    def active(self) -> Iterator[Any]:
        """os.environ set as for a subprocess (pyiceberg reads catalogs from it), and the
        settings; restored afterwards."""
        saved = dict(os.environ)
        try:
            for key in [k for k in os.environ if k.startswith(("LAKEHOUSE_", "PYICEBERG_"))]:
                del os.environ[key]
            os.environ.update(self.process_env())
            yield self.settings()
        finally:
            os.environ.clear()
            os.environ.update(saved)

    def tables(self) -> Any:
        """The events table and its companions, freshly loaded."""
        from catalog import open_catalog
        from lakehouse.tables import ensure_tables

        with self.active() as settings:
            return ensure_tables(open_catalog(settings), settings.table)[0]


def sqlite_target(home: Path) -> Target:
    home.mkdir(parents=True, exist_ok=True)
    return Target(home)


def postgres_target(
    server: Any, home: Path, database: str, *, password: str | None = None
) -> Target:
    """A fresh catalog database on ``server`` (a tests.support.postgres.PostgresServer).
    The cluster trusts local connections, so ``password`` is carried but not checked."""
    home.mkdir(parents=True, exist_ok=True)
    url = server.create_database(database)
    if password is not None:
        url = url.replace(f"//{server.user}@", f"//{server.user}:{password}@", 1)
    env = {
        "PYICEBERG_CATALOG__PG__TYPE": "sql",
        "PYICEBERG_CATALOG__PG__URI": url,
        "PYICEBERG_CATALOG__PG__WAREHOUSE": (home / "warehouse").as_uri(),
        "PYICEBERG_CATALOG__PG__INIT_CATALOG_TABLES": "true",
        "LAKEHOUSE_CATALOG": "pg",
    }
    return Target(home, env, "postgres")


# --- the CLI in a subprocess ---------------------------------------------------------------


@dataclass
class Proc:
    """A running subprocess whose output goes to files (a killed process never blocks
    on a full pipe)."""

    popen: subprocess.Popen[bytes]
    out_path: Path
    err_path: Path
    _files: tuple[TextIO, TextIO]

    def wait(self, timeout: float | None = None) -> int:
        code = self.popen.wait(timeout=timeout)
        for f in self._files:
            f.close()
        return code

    def kill(self) -> bool:
        """SIGKILL it if still running; True when it was."""
        if self.popen.poll() is not None:
            return False
        self.popen.kill()
        self.wait()
        return True

    @property
    def stdout(self) -> str:
        return self.out_path.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")


def spawn(args: list[str], target: Target, logs: Path, name: str, **extra_env: str) -> Proc:
    """Start ``python <args>`` with the target's environment; output to ``logs/name.*``."""
    logs.mkdir(parents=True, exist_ok=True)
    out = (logs / f"{name}.out").open("w")
    err = (logs / f"{name}.err").open("w")
    popen = subprocess.Popen(
        [PYTHON, *args], env=target.process_env(**extra_env), cwd=ROOT, stdout=out, stderr=err
    )
    return Proc(popen, logs / f"{name}.out", logs / f"{name}.err", (out, err))


def lakehouse(args: list[str], target: Target, logs: Path, name: str, **extra_env: str) -> Proc:
    return spawn(["-m", "lakehouse.cli.main", *args], target, logs, name, **extra_env)


def run_lakehouse(
    args: list[str], target: Target, logs: Path, name: str, timeout: float = 900, **extra_env: str
) -> Proc:
    proc = lakehouse(args, target, logs, name, **extra_env)
    proc.wait(timeout=timeout)
    return proc


# --- reading back ------------------------------------------------------------------------------

KEYS = ("event_id", "client_ts")


def read_snapshot(
    table: Table, snapshot_id: int | None, columns: tuple[str, ...] = KEYS
) -> pa.Table:
    if snapshot_id is None:
        return pa.table({c: pa.array([], pa.string()) for c in columns})
    return table.scan(snapshot_id=snapshot_id, selected_fields=columns).to_arrow()


def data_files(table: Table, snapshot_id: int | None) -> list[Any]:
    """The data files of a snapshot (pyiceberg DataFile objects)."""
    if snapshot_id is None:
        return []
    return [task.file for task in table.scan(snapshot_id=snapshot_id).plan_files()]


def read_data_file(table: Table, path: str, columns: list[str]) -> pa.Table:
    with table.io.new_input(path).open() as stream:
        return pq.read_table(stream, columns=columns)


def check_files_sorted(
    table: Table, snapshot_id: int | None, seen: set[str], figures: Figures
) -> None:
    """Every data file not checked before is sorted by (client_ts, event_id) and repeats
    no event_id (writers and compaction both deduplicate what they write)."""
    for data_file in data_files(table, snapshot_id):
        path = data_file.file_path
        if path in seen:
            continue
        try:
            rows = read_data_file(table, path, ["client_ts", "event_id"])
        except FileNotFoundError:
            continue  # expired meanwhile; judged by the snapshot checks
        seen.add(path)
        ts = rows.column("client_ts").cast(pa.int64()).to_pylist()
        ids = rows.column("event_id").to_pylist()
        keys = list(zip(ts, ids, strict=True))
        if keys != sorted(keys):
            figures.violation(
                "invariant_breaks", f"file not sorted by (client_ts, event_id): {path}"
            )
        if len(set(ids)) != len(ids):
            figures.violation("duplicates", f"an event_id repeats inside one file: {path}")


def id_counts(rows: pa.Table) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in rows.column("event_id").to_pylist():
        counts[value] = counts.get(value, 0) + 1
    return counts


def check_retained_snapshots(
    table: Table,
    figures: Figures,
    *,
    allowed_ids: set[str] | None = None,
    duplicates_allowed: bool = False,
    limit: int | None = None,
) -> None:
    """Every retained snapshot reads; none holds an id outside ``allowed_ids``; none
    holds an id twice (unless ``duplicates_allowed``)."""
    table.refresh()
    snapshots = list(table.metadata.snapshots)
    if limit is not None:
        snapshots = snapshots[-limit:]
    for snap in snapshots:
        try:
            rows = read_snapshot(table, snap.snapshot_id, ("event_id",))
        except Exception as exc:  # any failure to read is the finding
            table.refresh()
            if table.metadata.snapshot_by_id(snap.snapshot_id) is not None:
                figures.violation(
                    "unreadable_snapshots",
                    f"snapshot {snap.snapshot_id} of {table.name()}: {type(exc).__name__}: {exc}"[
                        :400
                    ],
                )
            continue
        figures.snapshots_read += 1
        ids = rows.column("event_id").to_pylist()
        if allowed_ids is not None:
            invented = set(ids) - allowed_ids
            if invented:
                figures.violation(
                    "invariant_breaks",
                    f"snapshot {snap.snapshot_id} holds {len(invented)} ids never sent, e.g. {sorted(invented)[:3]}",
                )
        if not duplicates_allowed and len(ids) != len(set(ids)):
            figures.violation(
                "duplicates",
                f"snapshot {snap.snapshot_id} holds {len(ids) - len(set(ids))} duplicate rows",
            )


def unreferenced_files(table: Table) -> list[str]:
    """Iceberg files under the table location that no metadata references, by the
    independent oracle (tests/support/reachable.py: metadata JSON and Avro read directly,
    none of the code that picks files to delete)."""
    from tests.support.reachable import unreachable_files

    table.refresh()
    return sorted(unreachable_files(table.metadata_location, table.location()))


def missing_files(table: Table) -> list[str]:
    """Files the table's metadata references that are gone (by the same oracle)."""
    from tests.support.reachable import missing_files as missing

    table.refresh()
    return sorted(missing(table.metadata_location))


# --- where a kill landed -----------------------------------------------------------------

BEFORE_ANY_WRITE = "before any write"
FILES_UNCOMMITTED = "files written or deleted, the commit or cleanup cut short"
NOT_LOGGED = "events committed, their files not yet in the ingest log"
BETWEEN_COMMITS = "between commits"
COMMIT_WINDOWS = (FILES_UNCOMMITTED, NOT_LOGGED, BETWEEN_COMMITS)


@dataclass(frozen=True)
class TableState:
    """What a kill can leave behind, read from the tables (files by the oracle)."""

    snapshots: frozenset[int]
    orphans: frozenset[str]
    unlogged_keys: frozenset[str]  # batch keys in the events table, not in the ingest log


def table_state(tables: Any) -> TableState:
    from lakehouse.schema import SUMMARY_BATCH_KEY
    from tests.support.reachable import unreachable_files

    events, ingested = tables.events, tables.ingested
    events.refresh()
    ingested.refresh()
    keys = {
        s.summary.additional_properties.get(SUMMARY_BATCH_KEY)
        for s in events.metadata.snapshots
        if s.summary is not None
    }
    keys.discard(None)
    logged = (
        set(
            ingested.scan(selected_fields=("batch_key",)).to_arrow().column("batch_key").to_pylist()
        )
        if ingested.current_snapshot() is not None
        else set()
    )
    # keys of batches written by a writer, not by ingest, are never logged: only keys that
    # an ingest run formed from positions (writers.ledger.batch_key: "f-...") are looked for
    unlogged = frozenset(k for k in keys - logged if k is not None and k.startswith("f-"))
    return TableState(
        snapshots=frozenset(s.snapshot_id for s in events.metadata.snapshots),
        orphans=frozenset(unreachable_files(events.metadata_location, events.location())),
        unlogged_keys=unlogged,
    )


def kill_phase(before: TableState, after: TableState) -> str:
    """Where a kill landed, judged by what it left: files no metadata reaches (a write
    or a delete cut short), events committed whose batch the ingest log lacks, commits
    made before it (so it cut a sequence of commits), or nothing at all."""
    if after.orphans - before.orphans:
        return FILES_UNCOMMITTED
    if after.unlogged_keys - before.unlogged_keys:
        return NOT_LOGGED
    if after.snapshots - before.snapshots:
        return BETWEEN_COMMITS
    return BEFORE_ANY_WRITE


def files_under(root: Path) -> int:
    """How many files are under ``root`` (a cheap sign that a process started writing)."""
    return sum(len(names) for _, _, names in os.walk(root))


def wait_for_writes(root: Path, baseline: int, procs: list[Any], timeout: float) -> None:
    """Wait until the number of files under ``root`` moves from ``baseline`` (a process
    started writing), every process exited, or ``timeout`` passed."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if files_under(root) != baseline or all(p.popen.poll() is not None for p in procs):
            return
        time.sleep(0.05)


# --- judging a process's end -----------------------------------------------------------------

DOCUMENTED_EXIT_CODES = {0: "ok", 1: "rejects", 2: "usage", 70: "internal", 75: "transient"}
"""The CLI's exit codes (lakehouse/cli/group.py). Anything else (a signal: -9, -11; 120;
an unhandled exception's 1 with a traceback) is a crash."""


def judge_cli_exit(code: int | None, stderr: str, what: str, figures: Figures) -> None:
    """A CLI run that may fail cleanly (a catalog down, say) but must never crash: a
    traceback or an exit code outside the documented ones is a violation; a documented
    failure (2, 70, 75) is a note."""
    if "Traceback" in stderr:
        last = stderr.strip().splitlines()[-1][:200] if stderr.strip() else ""
        figures.violation("invariant_breaks", f"{what} printed a traceback: {last}")
    elif code not in DOCUMENTED_EXIT_CODES:
        figures.violation(
            "invariant_breaks",
            f"{what} exited {code}, outside the documented {sorted(DOCUMENTED_EXIT_CODES)}: "
            f"{stderr.strip()[-200:]}",
        )
    elif code not in (0, 1):
        figures.note(
            f"{what}: exit {code} ({DOCUMENTED_EXIT_CODES[code]}): {stderr.strip()[-200:]}"
        )


def judge_server_exit(code: int | None, stderr: str, what: str, figures: Figures) -> None:
    """A long-running server (``maintain serve``) stopped with SIGTERM must exit 0 with no
    traceback: anything else means it crashed (or would not stop)."""
    if code != 0 or "Traceback" in stderr:
        figures.violation("invariant_breaks", f"{what} exited {code}: {stderr.strip()[-300:]}")
