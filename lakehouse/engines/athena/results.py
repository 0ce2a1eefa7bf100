"""Typed results of Athena queries (frozen, ``to_dict()``)."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import polars as pl
    import pyarrow as pa


@dataclass(frozen=True)
class QueryStats:
    """What Athena reports about one execution (``QueryExecution.Statistics``)."""

    data_scanned_bytes: int = 0
    engine_execution_ms: int = 0
    total_execution_ms: int = 0
    queue_ms: int = 0

    @classmethod
    def from_execution(cls, execution: dict[str, Any]) -> QueryStats:
        stats = execution.get("Statistics") or {}
        return cls(
            data_scanned_bytes=int(stats.get("DataScannedInBytes") or 0),
            engine_execution_ms=int(stats.get("EngineExecutionTimeInMillis") or 0),
            total_execution_ms=int(stats.get("TotalExecutionTimeInMillis") or 0),
            queue_ms=int(stats.get("QueryQueueTimeInMillis") or 0),
        )

    def to_dict(self) -> dict[str, int]:
        return {
            "data_scanned_bytes": self.data_scanned_bytes,
            "engine_execution_ms": self.engine_execution_ms,
            "total_execution_ms": self.total_execution_ms,
            "queue_ms": self.queue_ms,
        }


@dataclass(frozen=True)
class QueryExecution:
    """A finished (SUCCEEDED) execution, before its rows are fetched."""

    query_id: str
    state: str
    statement_type: str | None
    output_location: str | None
    stats: QueryStats
    polls: int


@dataclass(frozen=True)
class AthenaResult:
    """The rows of one query, typed from Athena's result metadata.

    ``table`` is an Arrow table whose columns carry the types of ``types`` (``varchar``
    -> string, ``bigint`` -> int64, ``timestamp`` -> timestamp[us], ``timestamp with time
    zone`` -> timestamp[us, UTC], ``decimal(p,s)`` -> decimal128(p,s), ...).
    """

    query_id: str
    columns: tuple[str, ...]
    types: tuple[str, ...]
    table: pa.Table = field(repr=False, compare=False)
    statement_type: str | None = None
    output_location: str | None = None
    stats: QueryStats = field(default_factory=QueryStats)
    polls: int = 0
    pages: int = 0

    @property
    def row_count(self) -> int:
        return int(self.table.num_rows)

    def to_arrow(self) -> pa.Table:
        return self.table

    def to_polars(self) -> pl.DataFrame:
        """A Polars frame (a repeated column name gets ``_2``, ``_3``...)."""
        import polars as pl

        frame = pl.from_arrow(self.table.rename_columns(unique_names(self.columns)))
        assert isinstance(frame, pl.DataFrame)
        return frame

    def rows(self) -> list[tuple[Any, ...]]:
        names = unique_names(self.columns)
        return [tuple(row[n] for n in names) for row in self.dicts()]

    def dicts(self) -> list[dict[str, Any]]:
        return self.table.rename_columns(unique_names(self.columns)).to_pylist()  # type: ignore[no-any-return]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{query_id, columns, types, rows, row_count, statement_type,
        output_location, stats}``, each row an object keyed by (unique) column name."""
        return {
            "query_id": self.query_id,
            "columns": list(self.columns),
            "types": list(self.types),
            "rows": [{k: plain(v) for k, v in row.items()} for row in self.dicts()],
            "row_count": self.row_count,
            "statement_type": self.statement_type,
            "output_location": self.output_location,
            "stats": self.stats.to_dict(),
        }


def unique_names(columns: tuple[str, ...]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for name in columns:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
    return out


def plain(value: Any) -> Any:
    """A JSON-ready form of one value (ISO-8601 text for times, text for decimals)."""
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return value
