"""Readers on Trino never see a partial batch or a row twice while writers append and
maintenance compacts, and a pinned snapshot reads the same rows in Polars and in Trino.

A writer thread commits batches of known, distinct sizes through the real writer, each
one commit holding on-time rows (this hour) and late rows (hours two days ago); a
compaction thread keeps rewriting those old hours, alternately with the Python
maintenance and with Trino's ``optimize``; the test thread polls ``count(*)`` and
``count(DISTINCT event_id)`` on Trino the whole time."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from catalog import open_catalog
from lakehouse.engines.trino.maintenance import compact_with_trino
from lakehouse.read import events
from lakehouse.settings import Settings
from lakehouse.tables import ensure_tables
from lakehouse.trino_server import connect, query
from maintenance import CompactionOptions, compact, plan_compaction
from tests.trino.conftest import TrinoPool, TrinoServer
from tests.trino.generate import append_raw
from writers import EventWriter

pytestmark = pytest.mark.trino

BATCHES = 24
OPTIONS = CompactionOptions(target_file_size=8 * 1024 * 1024)


def batch_size(i: int) -> int:
    return 23 + 7 * i  # distinct sizes: a partial batch would show as an impossible total


def _event(rng: random.Random, tag: str, ts: datetime) -> dict[str, Any]:
    return {
        "event_id": f"{tag}-{rng.getrandbits(48):012x}",
        "user_id": f"u{rng.randrange(40)}",
        "event_type": rng.choice(["view", "click", "buy"]),
        "client_ts": ts.isoformat().replace("+00:00", "Z"),
    }


@dataclass
class Race:
    settings: Settings
    old_start: datetime
    base: int
    totals: list[int] = field(default_factory=list)  # after each committed batch
    writer_done: threading.Event = field(default_factory=threading.Event)
    observed: threading.Event = field(default_factory=threading.Event)  # a read finished
    errors: list[BaseException] = field(default_factory=list)
    python_groups: int = 0
    trino_hours: int = 0

    def write(self) -> None:
        rng = random.Random(7)
        try:
            with EventWriter(self.settings, max_age=1e9) as writer:
                total = self.base
                for i in range(BATCHES):
                    now = datetime.now(UTC)
                    late = [
                        _event(
                            rng,
                            f"late{i}",
                            self.old_start + timedelta(seconds=rng.uniform(0, 6 * 3600)),
                        )
                        for _ in range(batch_size(i) // 2)
                    ]
                    fresh = [
                        _event(rng, f"now{i}", now - timedelta(seconds=rng.uniform(1, 600)))
                        for _ in range(batch_size(i) - len(late))
                    ]
                    writer.write(late + fresh)
                    result = writer.flush()
                    assert result.records_written == batch_size(i) and result.late_records
                    total += batch_size(i)
                    self.totals.append(total)
                    # let a read finish before the next batch (a loaded machine can make
                    # Trino queries slower than commits); the race itself goes on
                    self.observed.clear()
                    self.observed.wait(20)
        except BaseException as exc:
            self.errors.append(exc)
        finally:
            self.writer_done.set()

    def compact(self, port: int) -> None:
        try:
            turn = 0
            table = open_catalog(self.settings).load_table(self.settings.table.identifier)
            while not self.writer_done.is_set():
                table.refresh()
                plan = plan_compaction(table, OPTIONS)
                if turn % 2 == 0:
                    self.python_groups += compact(table, plan=plan).groups_committed
                else:
                    result = compact_with_trino(plan, self.settings, port=port, table=table)
                    self.trino_hours += result.replace_commits
                turn += 1
        except BaseException as exc:
            self.errors.append(exc)


@pytest.fixture(scope="module")
def race_table(embedded_trino: TrinoServer, trino_pool: TrinoPool) -> tuple[Settings, int, Race]:
    server = trino_pool.ensure(embedded_trino)
    settings = server.on_table("live", "race")
    table = ensure_tables(open_catalog(settings), settings.table)[0].events
    old_start = (datetime.now(UTC) - timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
    rng = random.Random(3)
    for chunk in range(8):  # fragmented old hours: work for the compactors from the start
        rows = []
        for _ in range(60):
            ts = old_start + timedelta(seconds=rng.uniform(0, 6 * 3600))
            rows.append({**_event(rng, f"seed{chunk}", ts), "client_ts": ts, "_arrival": ts})
        append_raw(table.refresh(), rows)
    return settings, server.port, Race(settings, old_start, base=8 * 60)


def test_readers_see_whole_batches_only(race_table: tuple[Settings, int, Race]) -> None:
    settings, port, race = race_table
    writer = threading.Thread(target=race.write, name="writer")
    compactor = threading.Thread(target=race.compact, args=(port,), name="compactor")
    seen: list[tuple[int, int]] = []
    conn = connect(settings, port)
    writer.start()
    compactor.start()
    try:
        while not race.writer_done.is_set():
            [(n, distinct)] = query(
                "SELECT count(*), count(DISTINCT event_id) FROM live.race", connection=conn
            ).rows
            seen.append((n, distinct))
            race.observed.set()
    finally:
        writer.join(120)
        compactor.join(300)
        conn.close()
    assert not race.errors, race.errors
    possible = {race.base, *race.totals}
    counts = [n for n, _ in seen]
    assert all(n == distinct for n, distinct in seen)  # no row counted twice
    assert set(counts) <= possible, sorted(set(counts) - possible)  # whole batches only
    assert counts == sorted(counts)  # never decreases
    assert len(set(counts)) >= BATCHES // 3  # the reader really raced the writer
    assert race.python_groups > 0 and race.trino_hours > 0  # and both compactors committed
    [(final,)] = query("SELECT count(*) FROM live.race", settings=settings, port=port).rows
    assert final == race.totals[-1]


def ends_a_commit(table: Any, snapshot: Any) -> bool:
    """False for the on-time snapshot of a writer commit whose late snapshot (same batch
    key, its child) was committed with it: that state was never the table's head."""
    key = (snapshot.summary or {}).get("lakehouse.batch-key")
    children = [s for s in table.snapshots() if s.parent_snapshot_id == snapshot.snapshot_id]
    return not key or all((c.summary or {}).get("lakehouse.batch-key") != key for c in children)


def test_every_snapshot_reads_the_same_in_polars_and_trino(
    race_table: tuple[Settings, int, Race],
) -> None:
    settings, port, race = race_table
    table = open_catalog(settings).load_table(settings.table.identifier)
    snapshots = table.snapshots()
    assert len(snapshots) > BATCHES  # the race above committed (run it first)
    sample = [*snapshots[:: max(1, len(snapshots) // 12)], snapshots[-1]]
    possible = {60 * k for k in range(1, 9)} | set(race.totals)
    heads = 0
    for snap in sample:
        sid = snap.snapshot_id
        polars = sorted(events(settings, snapshot_id=sid).select("event_id").collect()["event_id"])
        rows = query(
            f"SELECT event_id FROM live.race FOR VERSION AS OF {sid} ORDER BY event_id",
            settings=settings,
            port=port,
        ).rows
        assert [r[0] for r in rows] == polars
        if ends_a_commit(table, snap):
            heads += 1
            assert len(polars) in possible
    assert heads >= 5
