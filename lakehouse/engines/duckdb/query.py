"""``sql()``: one query over the events table's snapshot, in process."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from lakehouse.engines.duckdb.session import check_query, open_session
from lakehouse.errors import UsageError
from lakehouse.settings import Settings

if TYPE_CHECKING:
    import duckdb
    import polars as pl

Output = Literal["polars", "duckdb"]


def sql(
    query: str,
    settings: Settings | None = None,
    *,
    snapshot_id: int | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    output: Output = "polars",
) -> pl.DataFrame | duckdb.DuckDBPyRelation:
    """Run ``query`` (DuckDB SQL) over the views ``events``, ``events_ordered`` and
    ``rejected`` of the table's current snapshot (or ``snapshot_id``).

    ``start``/``end`` keep ``start <= client_ts < end`` in ``events`` and
    ``events_ordered``, and prune the data files outside that range before DuckDB sees
    them (the ordered view still numbers from the user's first event). ``output="polars"``
    (default) returns a DataFrame; ``output="duckdb"`` a lazy DuckDB relation (its
    connection stays open while the relation is referenced).
    """
    check_query(query)
    if output not in ("polars", "duckdb"):
        raise UsageError(f"output must be 'polars' or 'duckdb', not {output!r}")
    session = open_session(settings, snapshot_id=snapshot_id, start=start, end=end)
    try:
        relation = session.connection.sql(query)
    except Exception as exc:
        session.close()
        raise _sql_error(exc) from exc
    if relation is None:  # a statement without a result
        session.close()
        raise UsageError("the SQL statement returned no rows (only queries are supported)")
    if output == "duckdb":
        return relation
    try:
        frame: pl.DataFrame = relation.pl()
        return frame
    except Exception as exc:
        raise _sql_error(exc) from exc
    finally:
        session.close()


def _sql_error(exc: Exception) -> Exception:
    import duckdb

    if isinstance(exc, duckdb.Error):
        return UsageError(f"SQL error: {exc}")
    return exc


def rows_of(frame: pl.DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts of JSON-ready values (times as ISO 8601 text)."""
    import json

    return list(json.loads(frame.write_json()))
