"""The ledger: which source positions are committed, recorded once for every source.

It is the ``<table>_ingested`` table (``lakehouse.schema.INGESTED_SCHEMA``), one row per
position: ``source`` holds the position's id (a landing file's URI), ``size`` its bytes,
``records`` the records read from it, ``batch_key`` the idempotency key of the batch that
committed it, ``ingested_at`` when. A batch's rows are appended in one commit under the
batch's key, so a retried or repeated record of the same batch adds nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from lakehouse import summary
from lakehouse.schema import INGESTED_SCHEMA
from writers import commit
from writers.sources.base import Position

KIND = summary.KIND_INGESTED
"""The snapshot kind of the ledger's commits."""


def batch_key(positions: Sequence[Position]) -> str:
    """The idempotency key of a batch, made from its positions (ids and sizes): the same
    pending positions re-formed into the same batch on a re-run get the same key."""
    digest = hashlib.blake2b(digest_size=16)
    for p in positions:
        digest.update(f"{p.id}\x00{p.size}\x00".encode())
    return "f-" + digest.hexdigest()


class Ledger:
    """Committed positions in ``table`` (the events table's ``_ingested`` companion)."""

    def __init__(self, table: Any) -> None:
        self.table = table

    def committed(self) -> set[str]:
        """The ids of every committed position."""
        table = self.table
        table.refresh()
        if table.current_snapshot() is None:
            return set()
        column = table.scan(selected_fields=("source",)).to_arrow().column("source")
        return set(column.to_pylist())

    def committed_among(self, ids: Iterable[str]) -> dict[str, int]:
        """Of the given position ids, those committed, with their recorded sizes (a scan
        filtered on the ids, not a read of the whole ledger)."""
        from lakehouse.expressions import is_in

        wanted = sorted(set(ids))
        if not wanted:
            return {}
        return dict(self._scan(is_in("source", wanted)))

    def committed_with_prefix(self, prefix: str) -> list[tuple[str, int]]:
        """(id, size) of the committed positions whose id starts with ``prefix``, in
        commit order (a stream's source finds where each shard stands with it)."""
        from lakehouse.expressions import starts_with

        return self._scan(starts_with("source", prefix))

    def _scan(self, row_filter: Any) -> list[tuple[str, int]]:
        table = self.table
        table.refresh()
        if table.current_snapshot() is None:
            return []
        rows = table.scan(row_filter=row_filter, selected_fields=("source", "size")).to_arrow()
        return list(
            zip(rows.column("source").to_pylist(), rows.column("size").to_pylist(), strict=True)
        )

    def record(
        self,
        positions: Sequence[Position],
        records: Sequence[int],
        *,
        key: str,
        at: datetime | None = None,
    ) -> None:
        """Record the batch's positions (with the records read from each) as committed,
        once: a batch whose key is already in the ledger adds nothing."""
        if len(records) != len(positions):
            raise ValueError(f"{len(records)} record counts for {len(positions)} positions")
        schema = INGESTED_SCHEMA.as_arrow()
        now = at or datetime.now(UTC)
        n = len(positions)
        rows = pa.table(
            {
                "source": pa.array([p.id for p in positions], schema.field("source").type),
                "size": pa.array([p.size for p in positions], pa.int64()),
                "records": pa.array(list(records), pa.int64()),
                "batch_key": pa.array([key] * n, schema.field("batch_key").type),
                "ingested_at": pa.array([now] * n, schema.field("ingested_at").type),
            },
            schema=schema,
        )
        commit.append_with_key(self.table, rows, key=key, kind=KIND)
