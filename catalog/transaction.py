"""The project's table transaction, and the one direct catalog commit of updates.

pyiceberg 0.12's ``Transaction.table_metadata`` re-applies every staged update and
deep-copies the whole table metadata on each access. An append reads it about 16 times,
a snapshot producer of a rewrite dozens of times, so with hundreds of snapshots the
copying dominated commit latency (85 ms per access at 300 snapshots, measured) and, for
maintenance, the odds of losing the race to a writer. Table metadata models are frozen
and replaced (never mutated) when an update is applied, so :class:`LakehouseTransaction`
shares them: with nothing staged it is the table's own metadata, otherwise the staged
updates are applied once per change without the deep copy (:func:`apply_updates`).
"""

from __future__ import annotations

from collections.abc import Sequence

from pyiceberg.table import Table, Transaction
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.update import TableUpdate, ValidatableTableRequirement

from catalog.metadata import apply_updates


class LakehouseTransaction(Transaction):
    """A pyiceberg ``Transaction`` whose ``table_metadata`` is never deep-copied."""

    _applied: tuple[TableMetadata, tuple[object, ...], TableMetadata] | None = None

    @property
    def table_metadata(self) -> TableMetadata:
        base, updates = self._table.metadata, self._updates
        if not updates:
            return base
        cached = self._applied
        if cached is not None and cached[0] is base and cached[1] is updates:
            return cached[2]
        applied = apply_updates(base, updates)
        self._applied = (base, updates, applied)
        return applied


def begin(table: Table) -> LakehouseTransaction:
    """A new transaction on ``table``: every commit of the project starts here."""
    return LakehouseTransaction(table)


def commit_updates(
    table: Table,
    updates: Sequence[TableUpdate],
    requirements: Sequence[ValidatableTableRequirement],
) -> None:
    """Commit metadata ``updates`` under ``requirements`` in one catalog swap, with no
    retry of pyiceberg's (a transaction adds ``AssertTableUUID`` and retries conflicts
    itself; a compare-and-set must see the conflict). Raises ``CommitFailedException``
    when a requirement no longer holds or the swap lost a race. A requirement of the
    project's own (a ``ValidatableTableRequirement`` subclass) is checked by client-side
    catalogs inside their atomic swap."""
    table._do_commit(tuple(updates), tuple(requirements))  # type: ignore[arg-type]
