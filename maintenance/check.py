"""``lakehouse check``: is the table whole? Read-only (but for the record of the result).

* every file a retained snapshot references exists: manifest lists, manifests, data and
  delete files (through the table's FileIO: local or S3); with ``deep``, every data
  file's Parquet footer reads and its row count equals the manifest's ``record_count``;
* every live data file declares the table's sort order (``sort_order_id``) and is sorted
  by ``(client_ts, event_id)`` (a reproducible sample of the files unless ``deep``);
* the companion tables exist and agree with the events table: an ingest-log batch whose
  events snapshot is still in the metadata must be in the current history; otherwise its
  landing files are marked ingested while their events are not in the table (after a
  rollback, say), and no later ingest would read them again.

:func:`last_good_snapshot` finds the newest snapshot of the current history whose files
all exist: the one to roll back to (:mod:`maintenance.rollback`).
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow.parquet as pq
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchTableError
from pyiceberg.io import FileIO
from pyiceberg.manifest import DataFile, DataFileContent
from pyiceberg.table import Table
from pyiceberg.table.snapshots import Snapshot, ancestors_of

from catalog.files import FILE_CACHE
from lakehouse.errors import ConfigError
from lakehouse.schema import SORT_COLUMNS, SUMMARY_BATCH_KEY
from lakehouse.settings import TableName
from lakehouse.tables import INGESTED_SUFFIX, REJECTED_SUFFIX
from maintenance.checks import is_sorted

log = logging.getLogger(__name__)

LAST_CHECK_PROPERTY = "lakehouse.check.last"
DEFAULT_SAMPLE = 8
_LISTED_PROBLEMS = 20  # problems kept in the table property
_LISTED_SOURCES = 5

# Problem kinds
MISSING_FILE = "missing-file"
UNREADABLE_FILE = "unreadable-file"
ROW_COUNT = "row-count-mismatch"
SORT_ORDER_UNDECLARED = "sort-order-undeclared"
UNSORTED = "unsorted-file"
COMPANION_MISSING = "companion-missing"
INGEST_LOG_AHEAD = "ingest-log-ahead"


@dataclass(frozen=True)
class Problem:
    kind: str
    message: str
    path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "message": self.message, "path": self.path}


@dataclass(frozen=True)
class CheckResult:
    """What one check found. ``ok`` when ``problems`` is empty."""

    table: str
    checked_at: datetime
    deep: bool
    snapshots_checked: int = 0
    files_checked: int = 0  # manifest lists, manifests, data and delete files
    data_files_read: int = 0  # footers read (deep)
    sort_files_read: int = 0  # files whose key columns were read to check their order
    ingested_batches_checked: int = 0
    ingested_batches_unverified: int = 0  # their events snapshot expired (or wrote nothing)
    current_snapshot_id: int | None = None
    last_good_snapshot_id: int | None = None  # newest whole snapshot of the current history
    problems: tuple[Problem, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ok": self.ok}
        for key, value in self.__dict__.items():
            if key == "problems":
                out[key] = [p.to_dict() for p in value]
            elif isinstance(value, datetime):
                out[key] = value.isoformat()
            else:
                out[key] = value
        return out


class _Files:
    """Existence of each file, asked once."""

    def __init__(self, io: FileIO) -> None:
        self.io = io
        self.seen: dict[str, bool] = {}

    def exists(self, path: str) -> bool:
        if path not in self.seen:
            try:
                self.seen[path] = self.io.new_input(path).exists()
            except OSError:
                self.seen[path] = False
        return self.seen[path]


@dataclass
class _Walk:
    """Per snapshot: its missing (or unreadable) files as (problem kind, what, path); and
    every live file the snapshots reference."""

    missing: dict[int, list[tuple[str, str, str]]] = field(default_factory=dict)
    data_files: dict[str, DataFile] = field(default_factory=dict)


def _walk(table: Table, snapshots: Iterable[Snapshot], files: _Files) -> _Walk:
    out = _Walk()
    entries: dict[str, list[DataFile]] = {}
    for snapshot in snapshots:
        missing: list[tuple[str, str, str]] = []
        out.missing[snapshot.snapshot_id] = missing
        if not files.exists(snapshot.manifest_list):
            missing.append((MISSING_FILE, "manifest list", snapshot.manifest_list))
            continue
        try:
            manifests = snapshot.manifests(table.io)
        except Exception as exc:  # a damaged manifest list is the finding, not a crash
            missing.append((UNREADABLE_FILE, f"manifest list ({exc})", snapshot.manifest_list))
            continue
        for manifest in manifests:
            path = manifest.manifest_path
            if not files.exists(path):
                missing.append((MISSING_FILE, "manifest", path))
                continue
            if path not in entries:
                try:
                    entries[path] = [
                        e.data_file
                        for e in manifest.fetch_manifest_entry(table.io, discard_deleted=True)
                    ]
                except Exception as exc:
                    missing.append((UNREADABLE_FILE, f"manifest ({exc})", path))
                    continue
            for df in entries[path]:
                out.data_files.setdefault(df.file_path, df)
                if not files.exists(df.file_path):
                    what = "data file" if df.content == DataFileContent.DATA else "delete file"
                    missing.append((MISSING_FILE, what, df.file_path))
    return out


def last_good_snapshot(table: Table) -> Snapshot | None:
    """The newest snapshot of the current history whose every file exists (None: none)."""
    files = _Files(table.io)
    current = table.metadata.current_snapshot()
    if current is None:
        return None
    for snapshot in ancestors_of(current, table.metadata):
        if not _walk(table, [snapshot], files).missing[snapshot.snapshot_id]:
            return snapshot
    return None


def check_table(
    catalog: Catalog,
    name: TableName,
    *,
    deep: bool = False,
    sample: int = DEFAULT_SAMPLE,
    seed: int = 0,
    now: datetime | None = None,
) -> CheckResult:
    """Check the events table ``name`` and its companions (see the module's docstring).

    Unless ``deep``, the order of ``sample`` live data files is checked (chosen at random
    with ``seed``: the same table and seed give the same files) and no footer is read."""
    try:
        table = catalog.load_table(name.identifier)
    except NoSuchTableError as exc:
        raise ConfigError(
            f"table {name} does not exist in this catalog: run `lakehouse init --table {name}`"
        ) from exc
    FILE_CACHE.clear()  # what storage holds now, not what this process read before
    problems: list[Problem] = []
    files = _Files(table.io)
    metadata = table.metadata
    walk = _walk(table, metadata.snapshots, files)
    reported: set[str] = set()
    for snapshot_id, missing in walk.missing.items():
        for kind, what, path in missing:
            if path not in reported:
                reported.add(path)
                state = "missing" if kind == MISSING_FILE else "unreadable"
                problems.append(Problem(kind, f"{what} {state} (snapshot {snapshot_id})", path))
    current = metadata.current_snapshot()
    live: list[DataFile] = []
    if current is not None:
        live = [
            df
            for df in _walk(table, [current], files).data_files.values()
            if df.content == DataFileContent.DATA and files.exists(df.file_path)
        ]
    footers = _check_footers(table, walk, files, problems) if deep else 0
    sorted_read = _check_sort(table, live, problems, deep=deep, sample=sample, seed=seed)
    checked, unverified = _check_companions(catalog, name, table, problems)
    last_good: Snapshot | None = current
    if current is not None and walk.missing.get(current.snapshot_id):
        last_good = last_good_snapshot(table)
    return CheckResult(
        table=str(name),
        checked_at=now or datetime.now(UTC),
        deep=deep,
        snapshots_checked=len(metadata.snapshots),
        files_checked=len(files.seen),
        data_files_read=footers,
        sort_files_read=sorted_read,
        ingested_batches_checked=checked,
        ingested_batches_unverified=unverified,
        current_snapshot_id=current.snapshot_id if current else None,
        last_good_snapshot_id=last_good.snapshot_id if last_good else None,
        problems=tuple(problems),
    )


def _check_footers(table: Table, walk: _Walk, files: _Files, problems: list[Problem]) -> int:
    read = 0
    for path, df in sorted(walk.data_files.items()):
        if df.content != DataFileContent.DATA or not files.exists(path):
            continue
        read += 1
        try:
            with table.io.new_input(path).open() as stream:
                rows = pq.ParquetFile(stream).metadata.num_rows
        except Exception as exc:  # any unreadable footer is the finding, not a crash
            problems.append(Problem(UNREADABLE_FILE, f"footer unreadable: {exc}", path))
            continue
        if rows != df.record_count:
            problems.append(
                Problem(
                    ROW_COUNT,
                    f"file holds {rows} rows, its manifest says {df.record_count}",
                    path,
                )
            )
    return read


def _check_sort(
    table: Table,
    live: list[DataFile],
    problems: list[Problem],
    *,
    deep: bool,
    sample: int,
    seed: int,
) -> int:
    order_id = table.metadata.default_sort_order_id
    for df in sorted(live, key=lambda d: d.file_path):
        if df.sort_order_id != order_id:
            problems.append(
                Problem(
                    SORT_ORDER_UNDECLARED,
                    f"sort_order_id is {df.sort_order_id}, the table's is {order_id}",
                    df.file_path,
                )
            )
    chosen = sorted(live, key=lambda d: d.file_path)
    if not deep and len(chosen) > sample:
        chosen = sorted(random.Random(seed).sample(chosen, sample), key=lambda d: d.file_path)
    read = 0
    for df in chosen:
        try:
            with table.io.new_input(df.file_path).open() as stream:
                keys = pq.read_table(stream, columns=list(SORT_COLUMNS))
        except Exception as exc:
            problems.append(Problem(UNREADABLE_FILE, f"cannot read its keys: {exc}", df.file_path))
            continue
        read += 1
        if not is_sorted(keys):
            problems.append(
                Problem(UNSORTED, f"rows are not sorted by {', '.join(SORT_COLUMNS)}", df.file_path)
            )
    return read


def _check_companions(
    catalog: Catalog, name: TableName, events: Table, problems: list[Problem]
) -> tuple[int, int]:
    companions: dict[str, Table] = {}
    for suffix in (INGESTED_SUFFIX, REJECTED_SUFFIX):
        sibling = name.sibling(suffix)
        try:
            companions[suffix] = catalog.load_table(sibling.identifier)
        except NoSuchTableError:
            problems.append(
                Problem(COMPANION_MISSING, f"companion table {sibling} does not exist", None)
            )
    ingested = companions.get(INGESTED_SUFFIX)
    if ingested is None or ingested.current_snapshot() is None:
        return 0, 0
    log_rows = ingested.scan(selected_fields=("batch_key", "source")).to_arrow()
    sources: dict[str, list[str]] = {}
    for key, source in zip(
        log_rows.column("batch_key").to_pylist(), log_rows.column("source").to_pylist(), strict=True
    ):
        sources.setdefault(key, []).append(source)
    by_key: dict[str, list[int]] = {}
    for snap in events.metadata.snapshots:
        key = snap.summary.get(SUMMARY_BATCH_KEY) if snap.summary else None
        if key:
            by_key.setdefault(key, []).append(snap.snapshot_id)
    current = events.metadata.current_snapshot()
    history = {s.snapshot_id for s in ancestors_of(current, events.metadata)} if current else set()
    unverified = 0
    for key, batch_sources in sorted(sources.items()):
        ids = by_key.get(key)
        if not ids:
            unverified += 1
            continue
        if not history.intersection(ids):
            shown = ", ".join(sorted(batch_sources)[:_LISTED_SOURCES])
            more = len(batch_sources) - _LISTED_SOURCES
            problems.append(
                Problem(
                    INGEST_LOG_AHEAD,
                    f"batch {key} is in the ingest log ({len(batch_sources)} files: {shown}"
                    + (f", and {more} more" if more > 0 else "")
                    + f") but its events snapshot {ids[0]} is not in the current history: "
                    "those files will not be ingested again",
                    None,
                )
            )
    return len(sources), unverified


def record_check(table: Table, result: CheckResult) -> None:
    """Store a summary of ``result`` in the table property ``lakehouse.check.last`` (read
    by ``lakehouse health``); a failure to store it is logged, not raised."""
    summary = {
        "checked_at": result.checked_at.isoformat(),
        "ok": result.ok,
        "deep": result.deep,
        "problems": len(result.problems),
        "kinds": sorted({p.kind for p in result.problems}),
        "first": [p.to_dict() for p in result.problems[:_LISTED_PROBLEMS]],
    }
    try:
        table.transaction().set_properties(
            {LAST_CHECK_PROPERTY: json.dumps(summary, separators=(",", ":"))}
        ).commit_transaction()
    except Exception as exc:  # the check itself is done; only its record is missing
        log.warning("could not record the check of %s: %s", result.table, exc)


def json_property(table: Table, name: str) -> dict[str, Any] | None:
    """A table property holding a JSON object (None when absent or not an object)."""
    raw = table.properties.get(name)
    if not raw:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def read_last_check(table: Table) -> dict[str, Any] | None:
    """The summary :func:`record_check` stored (None when never checked)."""
    return json_property(table, LAST_CHECK_PROPERTY)
