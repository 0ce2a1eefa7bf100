"""Any source through the ingest driver lands every event exactly once, with no
bookkeeping of its own: an in-memory stream of NDJSON blobs, interrupted at each commit
of a batch and re-run, checked against its input by content."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pytest

from catalog import open_catalog
from lakehouse.settings import Settings
from lakehouse.tables import load_tables
from tests.writers.events import event, rows
from writers import commit, ingest_source
from writers.ledger import Ledger, batch_key
from writers.sources import Batch, Payload, Plan, Position

RECEIVED = datetime(2024, 5, 4, tzinfo=UTC)  # after every event of the tests


class Blobs:
    """A test-only stream: blob ``k`` sits at ``mem://stream/0/<k>``; pending blobs come in
    batches of ``per_batch``. It keeps no books: it is told what is committed."""

    def __init__(self, blobs: list[bytes], per_batch: int, *, honour_committed: bool = True):
        self.blobs = blobs
        self.per_batch = per_batch
        self.honour_committed = honour_committed
        self.read: list[str] = []  # positions whose payload the driver consumed

    def plan(self, ledger: Ledger) -> Plan:
        at = [Position(f"mem://stream/0/{k:08d}", len(b)) for k, b in enumerate(self.blobs)]
        committed = ledger.committed_among(p.id for p in at)
        left = {p.id for p in at if p.id in committed} if self.honour_committed else set()
        pending = [(p, b) for p, b in zip(at, self.blobs, strict=True) if p.id not in left]
        return Plan(self._batches(pending), skipped=tuple(sorted(left)))

    def _batches(self, pending: list[tuple[Position, bytes]]) -> Iterator[Batch]:
        for k in range(0, len(pending), self.per_batch):
            part = pending[k : k + self.per_batch]
            yield Batch(tuple(p for p, _ in part), self._payloads(part))

    def _payloads(self, part: list[tuple[Position, bytes]]) -> Iterator[Payload]:
        for position, blob in part:
            self.read.append(position.id)
            yield Payload(position, blob, RECEIVED)


BROKEN = '{"event_id": "broken",'


def make_blobs(count: int = 10, per_blob: int = 40) -> tuple[list[bytes], dict[str, Any]]:
    """Blobs of events with a resend of the previous blob's first event and a broken
    line (line 3) in every third blob. Returns the blobs and the input, decoded by
    ``json``, of every distinct event."""
    blobs: list[bytes] = []
    for b in range(count):
        lines = [json.dumps(event(b * per_blob + i, user=f"user-{b}-{i}")) for i in range(per_blob)]
        if b:
            lines.append(json.dumps(event((b - 1) * per_blob, user=f"user-{b - 1}-0")))
        if b % 3 == 0:
            lines.insert(2, BROKEN)
        blobs.append(("\n".join(lines) + "\n").encode())
    expected: dict[str, Any] = {}
    for blob in blobs:
        for line in blob.decode().splitlines():
            if line != BROKEN:
                record = json.loads(line)
                expected[record["event_id"]] = record
    return blobs, expected


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def check_exactly_once(settings: Settings, blobs: list[bytes], expected: dict[str, Any]) -> None:
    tables = load_tables(open_catalog(settings), settings.table)
    landed = rows(tables.events).to_pylist()
    ids = [r["event_id"] for r in landed]
    assert len(ids) == len(set(ids)), "an event landed twice"
    assert set(ids) == set(expected), "an event was lost"
    for r in landed:  # by content, against the input as json decodes it
        want = expected[r["event_id"]]
        assert (r["user_id"], r["event_type"], r["client_ts"]) == (
            want["user_id"],
            want["event_type"],
            _ts(want["client_ts"]),
        )
        assert r["server_ts"] == _ts(want["server_ts"])
    rejected = rows(tables.rejected).to_pylist()
    broken_at = {f"mem://stream/0/{k:08d}" for k in range(len(blobs)) if k % 3 == 0}
    assert sorted((r["source"], r["line"], r["raw"]) for r in rejected) == sorted(
        (s, 3, BROKEN) for s in broken_at
    )
    ledger = rows(tables.ingested).to_pylist()
    positions = [r["source"] for r in ledger]
    assert sorted(positions) == [f"mem://stream/0/{k:08d}" for k in range(len(blobs))]
    lines = {f"mem://stream/0/{k:08d}": b.count(b"\n") for k, b in enumerate(blobs)}
    assert {r["source"]: r["records"] for r in ledger} == lines
    assert {r["source"]: r["size"] for r in ledger} == {
        f"mem://stream/0/{k:08d}": len(b) for k, b in enumerate(blobs)
    }


class Crash(Exception):
    """The process dying at a commit."""


def interrupt(monkeypatch: pytest.MonkeyPatch, where: str, at_call: int) -> None:
    """Die at the ``at_call``-th commit of one kind: after the events commit, after the
    rejects commit, before or after the ledger commit."""
    calls = {"n": 0}
    real_events, real_append = commit.commit_events, commit.append_with_key

    def hit() -> bool:
        calls["n"] += 1
        return calls["n"] == at_call

    def events(*args: Any, **kwargs: Any) -> Any:
        out = real_events(*args, **kwargs)
        if where == "after-events" and hit():
            raise Crash(where)
        return out

    def append(table: Any, rows: pa.Table, *, key: str, kind: str) -> Any:
        if kind == "ingested" and where == "before-ledger" and hit():
            raise Crash(where)
        out = real_append(table, rows, key=key, kind=kind)
        if (kind, where) in {("rejects", "after-rejects"), ("ingested", "after-ledger")} and hit():
            raise Crash(where)
        return out

    monkeypatch.setattr(commit, "commit_events", events)
    monkeypatch.setattr(commit, "append_with_key", append)


@pytest.mark.parametrize(
    "where", ["after-events", "after-rejects", "before-ledger", "after-ledger"]
)
@pytest.mark.parametrize("rerun_batch", [3, 4], ids=["same-batches", "regrouped"])
def test_a_stream_interrupted_at_any_commit_then_rerun_lands_exactly_once(
    sqlite_settings: Settings, monkeypatch: pytest.MonkeyPatch, where: str, rerun_batch: int
) -> None:
    blobs, expected = make_blobs()
    with monkeypatch.context() as patch:
        interrupt(patch, where, at_call=2)
        with pytest.raises(Crash):
            ingest_source(Blobs(blobs, per_batch=3), sqlite_settings)
    tables = load_tables(open_catalog(sqlite_settings), sqlite_settings.table)
    committed = rows(tables.ingested).column("source").to_pylist()
    # the crash left one (after-ledger: two) batches of three in the ledger
    assert len(committed) == (6 if where == "after-ledger" else 3)

    source = Blobs(blobs, per_batch=rerun_batch)
    result = ingest_source(source, sqlite_settings)
    assert set(source.read).isdisjoint(committed), "a committed position was read again"
    assert result.files_skipped == len(committed)
    assert result.files == len(blobs) - len(committed)
    assert (
        result.records_read
        == result.records_written + result.duplicates_dropped + result.records_rejected
    )
    check_exactly_once(sqlite_settings, blobs, expected)

    again = ingest_source(Blobs(blobs, per_batch=rerun_batch), sqlite_settings)
    assert (again.files, again.files_skipped, again.records_read) == (0, len(blobs), 0)
    check_exactly_once(sqlite_settings, blobs, expected)


def test_a_source_that_ignores_the_ledger_is_still_ingested_once(
    sqlite_settings: Settings,
) -> None:
    blobs, expected = make_blobs(count=6)
    first = ingest_source(Blobs(blobs, per_batch=2, honour_committed=False), sqlite_settings)
    assert (first.files, first.commits, first.records_rejected) == (6, 3, 2)
    source = Blobs(blobs, per_batch=2, honour_committed=False)
    second = ingest_source(source, sqlite_settings)
    assert (second.files, second.files_skipped, second.records_read) == (0, 6, 0)
    assert source.read == [], "a batch of committed positions was read"
    check_exactly_once(sqlite_settings, blobs, expected)
    # regrouped, its batches mix committed and new positions: refused, nothing written
    blobs.append(json.dumps(event(9999)).encode())
    with pytest.raises(ValueError, match="mixes committed and new"):
        ingest_source(Blobs(blobs, per_batch=4, honour_committed=False), sqlite_settings)


def test_arrow_payloads_and_receipt_times(sqlite_settings: Settings) -> None:
    class Tables:
        def plan(self, ledger: Ledger) -> Plan:
            position = Position("mem://arrow/0", 0)
            data = pa.Table.from_pylist([event(1, minutes=10), event(2, minutes=20)])
            data = data.drop_columns(["server_ts"])
            batch = Batch((position,), iter([Payload(position, data, RECEIVED)]))
            done = ledger.committed_among([position.id])
            return Plan(iter([batch]) if position.id not in done else iter([]))

    result = ingest_source(Tables(), sqlite_settings)
    assert (result.records_written, result.late_records) == (2, 2)  # received a day later
    tables = load_tables(open_catalog(sqlite_settings), sqlite_settings.table)
    assert {r["event_id"]: r["server_ts"] for r in rows(tables.events).to_pylist()} == {
        "e000001": RECEIVED,
        "e000002": RECEIVED,
    }
    assert rows(tables.ingested).to_pylist()[0]["records"] == 2
    assert ingest_source(Tables(), sqlite_settings).records_read == 0


def test_payloads_out_of_step_with_positions_are_refused(sqlite_settings: Settings) -> None:
    a, b = Position("mem://x/a", 1), Position("mem://x/b", 1)

    class Wrong:
        def plan(self, ledger: Ledger) -> Plan:
            payload = Payload(b, json.dumps(event(1)).encode(), RECEIVED)
            return Plan(iter([Batch((a, b), iter([payload]))]))

    with pytest.raises(ValueError, match="not at the batch's position"):
        ingest_source(Wrong(), sqlite_settings)
    tables = load_tables(open_catalog(sqlite_settings), sqlite_settings.table)
    assert rows(tables.events).num_rows == 0 and rows(tables.ingested).num_rows == 0


def test_batch_keys_are_those_of_earlier_landing_groups() -> None:
    """A group killed before this version and re-run by it must find its own key: the
    key is still blake2b-128 of ``uri NUL size NUL`` per file, prefixed ``f-``."""
    files = [("file:///zone/a.ndjson", 10), ("file:///zone/b.ndjson.gz", 2048)]
    digest = hashlib.blake2b(digest_size=16)
    for uri, size in files:
        digest.update(uri.encode() + b"\x00" + str(size).encode() + b"\x00")
    assert batch_key([Position(u, s) for u, s in files]) == "f-" + digest.hexdigest()
