"""SQL without a server: DuckDB in this process over the events table's snapshot.

* :func:`sql` — run a query over the views ``events``, ``events_ordered`` and
  ``rejected``; a Polars DataFrame (default) or a DuckDB relation;
* :func:`open_session` — the DuckDB connection with those views, for several queries;
* the ``duckdb`` funnel engine (:mod:`lakehouse.engines.duckdb.funnel`).
"""

from lakehouse.engines.duckdb.query import sql
from lakehouse.engines.duckdb.session import VIEWS, SqlSession, open_session

__all__ = ["VIEWS", "SqlSession", "open_session", "sql"]
