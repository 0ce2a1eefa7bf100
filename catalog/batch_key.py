"""A commit requirement of the project's own: no snapshot carries this batch key.

A writer looks its batch key up before it commits, and leaves when the key is already
there. Between that look-up and the catalog swap another writer may commit the same
batch (two followers of one zone without a lease, a retried run beside the original).
pyiceberg then retries the losing commit by rebuilding it on the new head, without
looking at the key again, and the batch would land twice. :class:`AssertNoBatchKey`
moves the look-up into the swap itself: client-side catalogs (SQL, Glue) validate a
transaction's requirements against the current metadata inside their atomic
compare-and-set, so the swap fails when the key landed meanwhile, and the writer's own
retry (:func:`catalog.commit.commit_with_retries`) finds the key and commits nothing.

The failure is :class:`BatchKeyLanded`, a ``ValidationException``: pyiceberg's own
commit loop retries only ``CommitFailedException`` (rebuilding on the new head, which
would fail the same way up to ``commit.retry.num-retries`` times, with back-off), and
deletes the attempt's files on a ``ValidationException``; the project's retry then
treats it as a lost race.
"""

from __future__ import annotations

from typing import Literal

from pyiceberg.exceptions import CommitFailedException, ValidationException
from pyiceberg.table import Transaction
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.update import ValidatableTableRequirement

from lakehouse import summary


class BatchKeyLanded(ValidationException):
    """The batch key of a commit landed in a concurrent commit: this one must not."""


class AssertNoBatchKey(ValidatableTableRequirement):
    """Commit requirement: no retained snapshot added after ``checked_at`` (the head when
    the key was looked up; None: any snapshot) carries batch key ``key``."""

    type: Literal["lakehouse-assert-no-batch-key"] = "lakehouse-assert-no-batch-key"
    key: str
    checked_at: int | None = None

    def validate(self, base_metadata: TableMetadata | None) -> None:  # type: ignore[override]
        if base_metadata is None:
            raise CommitFailedException("Requirement failed: current table metadata is missing")
        for snapshot in reversed(base_metadata.snapshots):  # in the order they were added
            if self.checked_at is not None and snapshot.snapshot_id == self.checked_at:
                return  # everything older was looked at before the commit started
            props = snapshot.summary.additional_properties if snapshot.summary else {}
            if props.get(summary.BATCH_KEY) == self.key:
                raise BatchKeyLanded(f"batch {self.key} was committed concurrently")


def require_no_batch_key(tx: Transaction, key: str, checked_at: int | None) -> None:
    """Make ``tx``'s commit fail when a snapshot with batch ``key`` lands first."""
    tx._requirements += (AssertNoBatchKey(key=key, checked_at=checked_at),)  # type: ignore[operator]
