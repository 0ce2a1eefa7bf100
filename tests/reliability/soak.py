"""Concurrency soak: writer processes, the maintenance loop and a reader, for a set time.

Writers (:mod:`tests.reliability.worker`) commit batches of on-time, late and resent
events; ``lakehouse maintain serve`` compacts, expires and removes orphans meanwhile; this
process reads the table's head again and again and checks, on every new head:

1. nothing acknowledged is missing: every event of a batch its writer journaled before
   the read is in the head (journals are read before the table is refreshed);
2. no partial batch: an own event id carries its batch and the batch size, and every
   batch seen in the head is there whole;
3. no duplicate of an event only one writer sent (writers dedupe against committed
   hours); an event of the shared pool may be twice for a while, when two writers
   committed it at once, but never in an hour whose files were all written by compaction
   (a maintenance run covering that hour removed it);
4. totals never jump up: distinct events never decrease; no maintenance commit adds a row
   (added records <= deleted records); the head's total-records summary equals the rows
   read;
5. every data file is sorted by (client_ts, event_id) and repeats no event_id;
6. every so often an older retained snapshot is read too: it must read.

At the end the writers stop, the loop stops (SIGTERM), a final maintenance run covers
every hour, and the table must equal the union of all inputs: each event once, as sent.
"""

from __future__ import annotations

import json
import random
import signal
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from maintenance.parquet import is_compaction_output
from tests.reliability.harness import (
    Figures,
    Proc,
    Target,
    check_files_sorted,
    check_retained_snapshots,
    data_files,
    id_counts,
    judge_server_exit,
    lakehouse,
    read_snapshot,
    spawn,
    unreferenced_files,
)
from tests.reliability.worker import SHARED_PREFIX, parse_own, shared_event

HOUR_US = 3_600_000_000


def _us(iso_text: str) -> int:
    ts = datetime.fromisoformat(iso_text)
    return (ts - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


@dataclass
class Journals:
    """What the writers were told is committed, read incrementally."""

    paths: list[Path]
    start: datetime
    offsets: dict[Path, int] = field(default_factory=dict)
    acknowledged: set[str] = field(default_factory=set)
    content: dict[str, tuple[str, str, int]] = field(default_factory=dict)
    batches: int = 0
    conflicts: dict[Path, int] = field(default_factory=dict)  # catalog refusals per writer
    errors: dict[str, int] = field(default_factory=dict)
    error_messages: list[str] = field(default_factory=list)

    def read(self) -> None:
        for path in self.paths:
            if not path.exists():
                continue
            with path.open() as f:
                f.seek(self.offsets.get(path, 0))
                while True:
                    line = f.readline()
                    if not line.endswith("\n"):
                        break  # a line being written: next time
                    self.offsets[path] = f.tell()
                    entry = json.loads(line)
                    self.conflicts[path] = max(
                        self.conflicts.get(path, 0), entry.get("conflicts", 0)
                    )
                    self._take(entry)

    def _take(self, entry: dict[str, Any]) -> None:
        if "error" in entry:
            self.errors[entry["error"]] = self.errors.get(entry["error"], 0) + 1
            if len(self.error_messages) < 20:
                self.error_messages.append(f"{entry['error']}: {entry['message'][:200]}")
            return
        self.batches += 1
        for event_id, (user, kind, client) in entry["rows"].items():
            if event_id.startswith(SHARED_PREFIX):
                row = shared_event(int(event_id[len(SHARED_PREFIX) :]), self.start)
                user, kind, client = row["user_id"], row["event_type"], row["client_ts"]
            self.content.setdefault(event_id, (user, kind, _us(client)))
        self.acknowledged.update(entry["own"])
        self.acknowledged.update(entry["resent"])


@dataclass
class Reader:
    """The invariant checker (see the module docstring)."""

    target: Target
    journals: Journals
    figures: Figures
    rng: random.Random
    table: Any = None
    head: int | None = None
    distinct: int = 0
    seen_snapshots: set[int] = field(default_factory=set)
    checked_files: set[str] = field(default_factory=set)
    transient_duplicates: int = 0

    def check(self) -> None:
        self.journals.read()
        acknowledged = set(self.journals.acknowledged)
        if self.table is None:
            self.table = self.target.tables().events
        table = self.table
        table.refresh()
        head = table.metadata.current_snapshot_id
        if head is None or head == self.head:
            return
        try:
            rows = read_snapshot(table, head)
        except Exception as exc:
            table.refresh()
            if table.metadata.snapshot_by_id(head) is not None:
                self.figures.violation(
                    "unreadable_snapshots", f"head {head}: {type(exc).__name__}: {exc}"[:300]
                )
            return
        self.figures.reader_checks += 1
        self.figures.snapshots_read += 1
        counts = id_counts(rows)
        lost = acknowledged - set(counts)
        if lost:
            self.figures.violation(
                "losses",
                f"head {head} lacks {len(lost)} acknowledged events, e.g. {sorted(lost)[:3]}",
                len(lost),
            )
        self._batches_whole(head, counts)
        self._duplicates(head, rows, counts)
        self._totals(head, len(rows), len(counts))
        check_files_sorted(table, head, self.checked_files, self.figures)
        if self.rng.random() < 0.2:
            self._older_snapshot()

    def _batches_whole(self, head: int, counts: dict[str, int]) -> None:
        seen: dict[str, int] = {}
        sizes: dict[str, int] = {}
        for event_id in counts:
            parsed = parse_own(event_id)
            if parsed:
                seen[parsed[0]] = seen.get(parsed[0], 0) + 1
                sizes[parsed[0]] = parsed[1]
        partial = [tag for tag, n in seen.items() if n != sizes[tag]]
        if partial:
            self.figures.violation(
                "invariant_breaks", f"head {head}: partial batches {partial[:3]}", len(partial)
            )

    def _duplicates(self, head: int, rows: pa.Table, counts: dict[str, int]) -> None:
        doubled = {k for k, v in counts.items() if v > 1}
        if not doubled:
            return
        own = sorted(k for k in doubled if not k.startswith(SHARED_PREFIX))
        if own:
            self.figures.violation(
                "duplicates",
                f"head {head}: events only one writer sent are doubled: {own[:3]}",
                len(own),
            )
        compacted_hours: dict[int, bool] = {}
        for data_file in data_files(self.table, head):
            hour = data_file.partition[0]
            compacted_hours[hour] = compacted_hours.get(hour, True) and is_compaction_output(
                data_file.file_path
            )
        ts = rows.column("client_ts").cast(pa.int64()).to_pylist()
        for event_id, micros in zip(rows.column("event_id").to_pylist(), ts, strict=True):
            if event_id in doubled and compacted_hours.get(micros // HOUR_US, False):
                self.figures.violation(
                    "duplicates", f"head {head}: {event_id} twice in an hour maintenance compacted"
                )
                doubled.discard(event_id)
        self.transient_duplicates = max(self.transient_duplicates, len(doubled))

    def _totals(self, head: int, total: int, distinct: int) -> None:
        table = self.table
        snapshot = table.metadata.snapshot_by_id(head)
        summary = snapshot.summary if snapshot else None
        if summary is not None and summary.get("total-records") not in (None, str(total)):
            self.figures.violation(
                "invariant_breaks",
                f"head {head}: total-records {summary.get('total-records')} but {total} rows read",
            )
        if distinct < self.distinct:
            self.figures.violation(
                "losses",
                f"head {head}: distinct events fell from {self.distinct} to {distinct}",
                self.distinct - distinct,
            )
        self.distinct, self.head = distinct, head
        for snap in table.metadata.snapshots:
            if snap.snapshot_id in self.seen_snapshots:
                continue
            self.seen_snapshots.add(snap.snapshot_id)
            s = snap.summary
            if s is None or s.get("lakehouse.kind") in ("on-time", "late"):
                continue
            added, deleted = int(s.get("added-records") or 0), int(s.get("deleted-records") or 0)
            if added > deleted:
                self.figures.violation(
                    "invariant_breaks",
                    f"maintenance snapshot {snap.snapshot_id} ({s.operation.value}) added {added - deleted} rows",
                )

    def _older_snapshot(self) -> None:
        table = self.table
        older = [s.snapshot_id for s in table.metadata.snapshots if s.snapshot_id != self.head]
        if not older:
            return
        snapshot_id = self.rng.choice(older)
        try:
            read_snapshot(table, snapshot_id, ("event_id",))
            self.figures.snapshots_read += 1
        except Exception as exc:
            table.refresh()
            if table.metadata.snapshot_by_id(snapshot_id) is not None:
                self.figures.violation(
                    "unreadable_snapshots",
                    f"retained snapshot {snapshot_id}: {type(exc).__name__}: {exc}"[:300],
                )


def verify_exact(events: Any, journals: Journals, figures: Figures, label: str) -> None:
    """The head holds every acknowledged input once, as sent, and nothing else; every
    retained snapshot reads; every file is sorted."""
    events.refresh()
    head = events.metadata.current_snapshot_id
    rows = read_snapshot(events, head, ("event_id", "user_id", "event_type", "client_ts"))
    counts = id_counts(rows)
    union = journals.acknowledged
    missing = union - set(counts)
    if missing:
        figures.violation(
            "losses",
            f"{label}: {len(missing)} inputs missing, e.g. {sorted(missing)[:3]}",
            len(missing),
        )
    if set(counts) - union:
        figures.violation(
            "invariant_breaks", f"{label}: {len(set(counts) - union)} rows never acknowledged"
        )
    doubled = sum(v - 1 for v in counts.values() if v > 1)
    if doubled:
        figures.violation("duplicates", f"{label}: {doubled} duplicate rows", doubled)
    ts = rows.column("client_ts").cast(pa.int64()).to_pylist()
    for row, micros in zip(
        rows.select(["event_id", "user_id", "event_type"]).to_pylist(), ts, strict=True
    ):
        want = journals.content.get(row["event_id"])
        if want is not None and want != (row["user_id"], row["event_type"], micros):
            figures.violation(
                "invariant_breaks", f"{label}: {row['event_id']} differs from what was sent"
            )
            break
    check_retained_snapshots(events, figures, allowed_ids=union)
    check_files_sorted(events, head, set(), figures)


def final_check(target: Target, journals: Journals, figures: Figures) -> None:
    """After a final maintenance run over every hour: the table is the union of inputs."""
    from maintenance import CompactionOptions, MaintenanceOptions, run_maintenance

    journals.read()
    tables = target.tables()
    with target.active():
        result = run_maintenance(
            tables.events,
            MaintenanceOptions(
                compaction=CompactionOptions(hot_window=timedelta(0)),
                snapshot_retention=timedelta(0),
                retain_last=3,
                orphan_retention=timedelta(0),
                force=True,
                lease=False,
            ),
            now=datetime.now(UTC) + timedelta(hours=2),  # every hour closed, none hot
        )
    if not result.ok:
        figures.violation(
            "invariant_breaks", f"final maintenance failed: {result.failures} {result.job_failures}"
        )
    verify_exact(tables.events, journals, figures, "final")
    events = tables.events
    left = unreferenced_files(events)
    if left:
        figures.violation(
            "invariant_breaks",
            f"soak: {len(left)} unreferenced files after the final 0s-window run, e.g. {left[:1]}",
        )
    figures.events += len(journals.acknowledged)


def soak(
    target: Target,
    workdir: Path,
    *,
    seconds: float,
    writers: int = 3,
    seed: int = 1,
    shared: int = 3,
    maintain_every: str = "5s",
    retention: str = "2m",
) -> Figures:
    """Run the soak for ``seconds``; returns its figures."""
    figures = Figures(runs=1, concurrent_writers=writers)
    logs = workdir / "logs"
    start = datetime.now(UTC)
    target.tables()  # created once, before the writers race for it
    journal_paths = [workdir / f"journal-{w}.ndjson" for w in range(writers)]
    procs: list[Proc] = [
        spawn(
            ["-m", "tests.reliability.worker", "--writer", str(w), "--journal", str(journal_paths[w]),
             "--seed", str(seed), "--seconds", str(seconds), "--shared", str(shared),
             "--start", start.isoformat(), "--pause", "1.5"],
            target, logs, f"writer-{w}",
        )
        for w in range(writers)
    ]  # fmt: skip
    serve = lakehouse(
        ["maintain", "serve", "--json", "--every", maintain_every, "--hot-window", "0s",
         "--snapshot-retention", retention, "--retain-last", "2", "--orphan-retention", "10m", "--force"],
        target, logs, "maintain-serve",
    )  # fmt: skip
    journals = Journals(journal_paths, start)
    reader = Reader(target, journals, figures, random.Random(seed))
    began = time.monotonic()
    try:
        while any(p.popen.poll() is None for p in procs):
            reader.check()
            time.sleep(0.3)
        reader.check()
    finally:
        for p in procs:
            p.kill()
        serve.popen.send_signal(signal.SIGTERM)
        try:
            serve.wait(timeout=300)
        except Exception:
            serve.kill()
    figures.minutes_soaked = (time.monotonic() - began) / 60
    for w, p in enumerate(procs):
        if p.popen.returncode != 0:
            figures.violation(
                "invariant_breaks", f"writer {w} exited {p.popen.returncode}: {p.stderr[-500:]}"
            )
    judge_server_exit(serve.popen.returncode, serve.stderr, "maintain serve", figures)
    runs = [json.loads(line) for line in serve.stdout.splitlines() if line.startswith("{")]
    figures.note(
        f"soak: {len(runs)} maintenance runs, {sum((r.get('compaction') or {}).get('groups_committed', 0) for r in runs)} groups compacted, "
        f"{sum((r.get('compaction') or {}).get('duplicates_removed', 0) for r in runs)} duplicates removed, "
        f"{sum((r.get('expiry') or {}).get('snapshots_expired', 0) for r in runs)} snapshots expired"
    )
    final_check(target, journals, figures)
    figures.commits += journals.batches
    figures.commit_errors_retried += sum(journals.errors.values())
    figures.note(
        f"soak: at most {reader.transient_duplicates} shared events doubled at once before maintenance"
    )
    for message in journals.error_messages[:5]:
        figures.note(f"soak writer error (retried): {message}")
    return figures
