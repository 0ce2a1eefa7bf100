"""Commit a rewrite the way Iceberg's Java ``RewriteFiles`` does, through pyiceberg's
private snapshot producer (pyiceberg is pinned exactly; tests/maintenance/test_private_api.py
fails loudly when an upgrade breaks what this module relies on).

pyiceberg's public overwrite commits ``delete`` + ``append`` (incremental readers see
rewritten rows again) or an ``overwrite`` whose conflict check fails on any concurrent
append. Here:

* a rewrite that only reorganises data commits a true ``replace`` snapshot (row totals
  unchanged; incremental readers skip it), one that dropped duplicates an ``overwrite``;
* the conflict check keeps the ``RewriteFiles`` rules: the rewritten files must still
  exist and no new delete file may apply to them. Concurrent appends, even into the very
  hour being rewritten, are kept: the commit is rebuilt on the new head and retried.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from pyiceberg.exceptions import CommitFailedException, ValidationException
from pyiceberg.manifest import DataFile
from pyiceberg.table import Table
from pyiceberg.table.refs import MAIN_BRANCH
from pyiceberg.table.snapshots import Operation, Snapshot, Summary
from pyiceberg.table.update.snapshot import CommitWindow, _OverwriteFiles
from pyiceberg.table.update.validate import (
    _validate_data_files_exist,
    _validate_no_new_deletes_for_data_files,
)
from pyiceberg.typedef import EMPTY_DICT

from lakehouse.errors import CommitError
from maintenance.errors import RewriteConflictError

log = logging.getLogger(__name__)


def relabel(summary: Summary, operation: Operation) -> Summary:
    """The same summary under another operation (pyiceberg computes totals only for
    append/overwrite/delete; a rewrite's totals are those of an overwrite)."""
    return Summary(operation, **summary.additional_properties)


class _RewriteFiles(_OverwriteFiles):
    """Swap data files for their rewrite: ``replace`` (or ``overwrite``) with RewriteFiles
    validation."""

    _label: Operation = Operation.REPLACE

    def _summary(self, snapshot_properties: dict[str, str] = EMPTY_DICT) -> Summary:
        return relabel(super()._summary(snapshot_properties), self._label)

    def _validate_concurrency(self) -> None:
        window = self._commit_window
        if window is None or window.is_empty() or window.head is None:
            return
        table = self._transaction._table
        _validate_data_files_exist(table, window.head, self._deleted_data_files, window.base)
        _validate_no_new_deletes_for_data_files(
            table, window.head, None, self._deleted_data_files, window.base
        )


def commit_rewrite(
    table: Table,
    removed: Iterable[DataFile],
    added: Iterable[DataFile],
    *,
    base_snapshot_id: int | None,
    replace: bool,
    properties: Mapping[str, str] | None = None,
) -> Snapshot:
    """Commit one rewrite on ``table`` (refreshed to the newest state it knows).

    ``base_snapshot_id`` is the snapshot the rewrite read (the plan's): concurrent
    changes since then are validated before the first attempt and again on each retry.
    Raises :class:`RewriteConflictError` when a concurrent change touched the removed
    files (nothing committed) and :class:`CommitError` when the catalog kept refusing.
    """
    txn = table.transaction()
    producer = _RewriteFiles(
        operation=Operation.OVERWRITE,
        transaction=txn,
        io=table.io,
        snapshot_properties=dict(properties or {}),
    )
    producer._label = Operation.REPLACE if replace else Operation.OVERWRITE
    for data_file in removed:
        producer.delete_data_file(data_file)
    for data_file in added:
        producer.append_data_file(data_file)
    snapshot_id = producer.snapshot_id
    try:
        # The validation window starts where the rewrite read, not where this handle is.
        producer._starting_snapshot_id = base_snapshot_id
        producer._commit_window = CommitWindow.resolve(
            table.metadata, base_snapshot_id, MAIN_BRANCH
        )
        producer._validate_concurrency()
        producer.commit()
        txn.commit_transaction()
    except ValidationException as exc:
        raise RewriteConflictError(f"rewrite conflicts with a concurrent change: {exc}") from exc
    except CommitFailedException as exc:
        raise CommitError(f"rewrite commit kept failing: {exc}") from exc
    snapshot = table.metadata.snapshot_by_id(snapshot_id)
    if snapshot is None:  # pragma: no cover - the commit returned without our snapshot
        raise CommitError(f"committed snapshot {snapshot_id} is missing from the table metadata")
    return snapshot


def summary_counts(snapshot: Snapshot) -> dict[str, Any]:
    summary = snapshot.summary
    return {
        "operation": summary.operation.value if summary else None,
        **(summary.additional_properties if summary else {}),
    }
