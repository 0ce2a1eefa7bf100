"""Query a local Trino with the ``trino`` DB-API client.

The connection goes to ``127.0.0.1:<port>`` as user ``lakehouse``, catalog ``lakehouse``
and, by default, the schema of the settings' events table (``analytics``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lakehouse.engines.trino.endpoint import CATALOG_NAME, HOST, default_port
from lakehouse.engines.trino.errors import TrinoNotRunningError, TrinoQueryError
from lakehouse.settings import Settings

if TYPE_CHECKING:
    import pyarrow as pa
    from trino.dbapi import Connection

log = logging.getLogger(__name__)

USER = "lakehouse"


@dataclass(frozen=True)
class QueryResult:
    """Rows of a query with their column names and Trino type names."""

    columns: tuple[str, ...]
    types: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...] = field(repr=False)
    query_id: str | None = None

    @property
    def row_count(self) -> int:
        return len(self.rows)

    def dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]

    def to_arrow(self) -> pa.Table:
        import pyarrow as pa

        arrays = [pa.array([row[i] for row in self.rows]) for i in range(len(self.columns))]
        return pa.Table.from_arrays(arrays, names=list(self.columns))

    def to_dict(self) -> dict[str, Any]:
        return {
            "columns": list(self.columns),
            "types": list(self.types),
            "rows": [list(row) for row in self.rows],
            "row_count": self.row_count,
            "query_id": self.query_id,
        }


def connect(
    settings: Settings,
    port: int | None = None,
    *,
    catalog: str = CATALOG_NAME,
    schema: str | None = None,
    request_timeout: float = 300.0,
    session_properties: Mapping[str, str] | None = None,
) -> Connection:
    """A DB-API connection to the local server (no request is made until a query runs).
    ``port`` defaults to ``LAKEHOUSE_TRINO_PORT``, else 8080. ``session_properties``
    are Trino session properties, e.g. ``{"lakehouse.target_max_file_size": "128MB"}``."""
    import trino

    connection: Connection = trino.dbapi.connect(  # type: ignore[no-untyped-call]
        host=HOST,
        port=port or default_port(),
        user=USER,
        catalog=catalog,
        schema=schema or settings.table.namespace,
        http_scheme="http",
        request_timeout=request_timeout,
        source="lakehouse",
        session_properties=dict(session_properties or {}),
    )
    return connection


def query(
    sql: str,
    params: Sequence[Any] | None = None,
    *,
    settings: Settings | None = None,
    port: int | None = None,
    connection: Connection | None = None,
) -> QueryResult:
    """Run one statement and fetch all its rows. ``params`` fill ``?`` placeholders.
    Without ``connection``, one is opened with :func:`connect` and closed afterwards."""
    import requests
    import trino

    own = connection is None
    conn = connection or connect(settings or Settings.from_env(), port)
    cursor = conn.cursor()
    try:
        for wait in (0.5, 1.0, 2.0, 4.0, 0.0):
            try:
                if params:
                    cursor.execute(sql, list(params))
                else:
                    cursor.execute(sql)
                rows = cursor.fetchall()
                break
            except trino.exceptions.TrinoQueryError as exc:
                # Just after start the node may not have announced its catalogs yet: the
                # query was not scheduled, so running it again is safe.
                if exc.error_name != "NO_NODES_AVAILABLE" or not wait:
                    raise
                time.sleep(wait)
                cursor = conn.cursor()
        description = cursor.description or []
        return QueryResult(
            columns=tuple(d[0] for d in description),
            types=tuple(str(d[1]) for d in description),
            rows=tuple(tuple(r) for r in rows),
            query_id=cursor.query_id,
        )
    except (requests.exceptions.ConnectionError, trino.exceptions.TrinoConnectionError) as exc:
        raise TrinoNotRunningError(
            f"no Trino answers on {HOST}:{conn.port}; start one with "
            f"`lakehouse trino start --port {conn.port}`"
        ) from exc
    except trino.exceptions.TrinoQueryError as exc:
        raise TrinoQueryError(f"{exc.error_name}: {exc.message}") from exc
    except trino.exceptions.DatabaseError as exc:
        raise TrinoQueryError(str(exc)) from exc
    finally:
        cursor.close()
        if own:
            conn.close()  # type: ignore[no-untyped-call]
