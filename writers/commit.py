"""Commit a batch: on-time and late rows as two snapshots of one atomic table commit,
each summary carrying the batch's idempotency key, so a retried batch writes nothing."""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.exceptions import CommitFailedException, ValidationException
from pyiceberg.table import Table
from pyiceberg.table.snapshots import Snapshot

from catalog.batch_key import require_no_batch_key
from catalog.commit import commit_with_retries
from catalog.transaction import begin
from lakehouse import faults, summary
from lakehouse import schema as spec
from lakehouse.hours import hour_label
from lakehouse.retry import retry_storage
from lakehouse.storage import storage_error
from writers.files import write_sorted

log = logging.getLogger(__name__)
T = TypeVar("T")


def content_key(batch: pa.Table) -> str:
    """A key derived from the batch's content: its ``event_id`` values in the batch's
    (deterministic) sort order, so the same rows give the same key, whatever order or
    buffering they arrived in. The batch must be sorted and deduplicated."""
    digest = hashlib.blake2b(digest_size=16)
    col = pc.cast(batch.column("event_id"), pa.large_string()).combine_chunks()
    for buf in col.buffers()[1:]:
        if buf is not None:
            digest.update(buf)
    digest.update(str(batch.num_rows).encode())
    return "c-" + digest.hexdigest()


class _KeyIndex:
    """The batch key of each retained snapshot of one table, kept current incrementally.

    Snapshots are only ever added at the end of the list, and removed by expiry; a new
    version of the metadata is brought up to date by reading the summaries of the
    snapshots added at its end, so a lookup costs the new snapshots, not the history.
    When the counts disagree after that (something was expired), the index is
    reconciled with the whole list once."""

    def __init__(self) -> None:
        self.key_of: dict[int, str | None] = {}
        self.ids_of: dict[str, dict[int, int]] = {}  # key -> {snapshot id: sequence number}
        self.full_passes = 0  # whole-list reconciliations, for tests

    def _add(self, snap: Snapshot) -> None:
        props = snap.summary.additional_properties if snap.summary else {}
        key = props.get(spec.SUMMARY_BATCH_KEY)
        self.key_of[snap.snapshot_id] = key
        if key is not None:
            self.ids_of.setdefault(key, {})[snap.snapshot_id] = snap.sequence_number or 0

    def _drop(self, snapshot_id: int) -> None:
        key = self.key_of.pop(snapshot_id)
        if key is not None:
            ids = self.ids_of[key]
            del ids[snapshot_id]
            if not ids:
                del self.ids_of[key]

    def update(self, snapshots: list[Snapshot]) -> None:
        new = []
        for snap in reversed(snapshots):
            if snap.snapshot_id in self.key_of:
                break
            new.append(snap)
        for snap in reversed(new):
            self._add(snap)
        if len(self.key_of) != len(snapshots):
            self.full_passes += 1
            retained = {s.snapshot_id for s in snapshots}
            for gone in [i for i in self.key_of if i not in retained]:
                self._drop(gone)
            for snap in snapshots:
                if snap.snapshot_id not in self.key_of:
                    self._add(snap)

    def lookup(self, key: str) -> list[int]:
        ids = self.ids_of.get(key, {})
        return sorted(ids, key=ids.__getitem__)


_KEYS: dict[str, _KeyIndex] = {}
_KEYS_LOCK = threading.Lock()


def snapshots_with_key(table: Table, key: str) -> list[int]:
    """Ids of retained snapshots committed under this batch key, in commit order. The
    batch key of each snapshot is read once per process (summaries never change)."""
    with _KEYS_LOCK:
        index = _KEYS.setdefault(table.metadata.table_uuid.hex, _KeyIndex())
        index.update(table.metadata.snapshots)
        return index.lookup(key)


def commit_events(
    table: Table,
    on_time: pa.Table,
    late: pa.Table,
    *,
    key: str,
    late_hours: list[datetime],
    writer: str,
) -> list[int]:
    """Append both parts in one transaction (two snapshots, committed together).
    Returns the new snapshot ids, or the existing ones when this key already landed.
    Transient storage errors retry the whole step; the key is checked again first, so
    a commit that landed despite an error is not repeated."""

    tries = 0

    def attempt() -> list[int]:
        nonlocal tries
        tries += 1
        if tries > 1:  # the caller refreshed before the first attempt
            table.refresh()
        return rebased(
            table,
            lambda: _commit_events_once(
                table, on_time, late, key=key, late_hours=late_hours, writer=writer
            ),
            what=f"batch {key}",
        )

    return retry_storage(attempt)


def rebased(table: Table, step: Callable[[], T], *, what: str) -> T:
    """Run a commit ``step`` through the project's commit retries: when it lost the
    race (pyiceberg's own retries exhausted), or the snapshot it started from was expired
    (by maintenance) while it committed, refresh and run it again on the new head.

    pyiceberg retries a conflicting commit by rebuilding it on the new head, starting
    from the snapshot the transaction began at; if expiry removed that snapshot
    meanwhile, the rebuild fails validation and nothing was committed (the step then
    deletes the files it wrote, and checks its key again on the next attempt)."""
    return commit_with_retries(table, lambda _: step(), what=what)


def _commit_events_once(
    table: Table,
    on_time: pa.Table,
    late: pa.Table,
    *,
    key: str,
    late_hours: list[datetime],
    writer: str,
) -> list[int]:
    """Append both parts in one transaction (two snapshots, committed together).
    Returns the new snapshot ids, or the existing ones when this key already landed."""
    existing = snapshots_with_key(table, key)
    if existing:
        log.info("batch %s already committed as %s; nothing to write", key, existing)
        return existing
    base = {spec.SUMMARY_BATCH_KEY: key, spec.SUMMARY_WRITER: writer}
    parts = []
    if on_time.num_rows:
        parts.append(
            (
                on_time,
                {
                    **base,
                    spec.SUMMARY_KIND: summary.KIND_ON_TIME,
                    spec.SUMMARY_IDEMPOTENCY_KEY: f"{key}/on-time",
                },
            )
        )
    if late.num_rows:
        parts.append(
            (
                late,
                {
                    **base,
                    spec.SUMMARY_KIND: summary.KIND_LATE,
                    spec.SUMMARY_LATE: "true",
                    spec.SUMMARY_LATE_HOURS: ",".join(hour_label(h) for h in late_hours),
                    spec.SUMMARY_IDEMPOTENCY_KEY: f"{key}/late",
                },
            )
        )
    if not parts:
        return []
    merge = table.properties.get("commit.manifest-merge.enabled", "false").lower() == "true"
    written: list[str] = []
    checked_at = table.metadata.current_snapshot_id  # the head the key was looked up at
    try:
        with begin(table) as tx:
            require_no_batch_key(tx, key, checked_at)
            for rows, props in parts:
                files = write_sorted(table, tx.table_metadata, rows)
                written += [f.file_path for f in files]
                update = tx.update_snapshot(snapshot_properties=props)
                with update.merge_append() if merge else update.fast_append() as producer:
                    for data_file in files:
                        producer.append_data_file(data_file)
            faults.point("write.files-written")
    except (ValidationException, CommitFailedException):
        # surely not committed (see `rebased`): the files are ours to drop
        _delete_quietly(table, written)
        raise
    except OSError as exc:  # writing data or metadata files failed after the client's retries
        raise storage_error(exc, table.location(), "write to") from exc
    return snapshots_with_key(table, key)


def _delete_quietly(table: Table, paths: list[str]) -> None:
    for path in paths:
        try:
            table.io.delete(path)
        except Exception as exc:  # an orphan then, for orphan removal
            log.warning("could not delete %s after a failed commit: %s", path, exc)


def append_with_key(table: Table, rows: pa.Table, *, key: str, kind: str) -> list[int]:
    """Idempotent single append to a companion table (rejects, ingest log), retried on
    transient storage errors and when maintenance expired its base meanwhile."""
    return retry_storage(
        lambda: rebased(
            table,
            lambda: _append_with_key_once(table, rows, key=key, kind=kind),
            what=f"{kind} of batch {key}",
        )
    )


def _append_with_key_once(table: Table, rows: pa.Table, *, key: str, kind: str) -> list[int]:
    table.refresh()
    existing = snapshots_with_key(table, key)
    if existing or rows.num_rows == 0:
        return existing
    checked_at = table.metadata.current_snapshot_id
    try:
        with begin(table) as tx:
            require_no_batch_key(tx, key, checked_at)
            tx.append(
                rows, snapshot_properties={spec.SUMMARY_BATCH_KEY: key, spec.SUMMARY_KIND: kind}
            )
    except OSError as exc:
        raise storage_error(exc, table.location(), "write to") from exc
    return snapshots_with_key(table, key)
