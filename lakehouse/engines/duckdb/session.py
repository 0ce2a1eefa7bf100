"""A DuckDB connection over the events table's snapshot: views ``events``,
``events_ordered`` and ``rejected``.

The data files are planned by pyiceberg at the snapshot read (default: the current one),
with the client-time range pushed into the plan: files whose statistics (hour partition,
``client_ts`` bounds) fall outside ``[start, end)`` are not registered at all, so DuckDB
never opens them (:attr:`SqlSession.files` counts those it may read). Local files and
objects of one S3 bucket (read with the table's S3 settings) are registered as one
pyarrow dataset whose fragments carry the file's ``client_ts`` bounds
(:mod:`lakehouse.engines.duckdb.dataset`): DuckDB scans them as the query runs, and a time
filter written in the query on ``events`` is pushed into the Arrow scan and skips the
files outside it as well. Files with deletes are read by pyiceberg into Arrow first.

``events_ordered`` is the ordered view (the same three columns Trino and Athena compute,
from :func:`lakehouse.read.sequence.ordered_columns`), numbered over the user's whole
history up to ``end`` in the snapshot, then restricted to ``client_ts >= start``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from lakehouse.errors import UsageError
from lakehouse.read.sequence import ordered_columns
from lakehouse.read.source import check_range, check_snapshot
from lakehouse.settings import Settings

if TYPE_CHECKING:
    import duckdb
    from pyiceberg.table import Table

log = logging.getLogger(__name__)

VIEWS = ("events", "events_ordered", "rejected")


@dataclass
class SqlSession:
    """An open DuckDB connection with the views, and what was planned."""

    connection: duckdb.DuckDBPyConnection
    snapshot_id: int | None
    files: int  # data files of the events table registered (after pruning)
    files_in_snapshot: int  # data files of the snapshot without a time range
    columns: tuple[str, ...] = field(default=())

    def close(self) -> None:
        self.connection.close()


def _row_filter(start: datetime | None, end: datetime | None) -> Any:
    from pyiceberg.expressions import AlwaysTrue, And

    from lakehouse.expressions import ts_at_least, ts_before

    expr: Any = AlwaysTrue()
    if start is not None:
        expr = And(expr, ts_at_least("client_ts", start))
    if end is not None:
        expr = And(expr, ts_before("client_ts", end))
    return expr


def _register(
    con: duckdb.DuckDBPyConnection,
    name: str,
    table: Table,
    snapshot_id: int | None,
    row_filter: Any,
) -> int:
    """A view ``name`` over the table's files at ``snapshot_id`` matching ``row_filter``
    (no filter on the rows themselves); returns the number of files registered."""
    import pyarrow as pa

    if snapshot_id is None:
        con.register(name, table.schema().as_arrow().empty_table())
        return 0
    from lakehouse.engines.duckdb.dataset import dataset_paths, files_dataset

    scan = table.scan(row_filter=row_filter, snapshot_id=snapshot_id)
    tasks = list(scan.plan_files())
    where = dataset_paths(table, [t.file.file_path for t in tasks]) if tasks else None
    if any(t.delete_files for t in tasks) or where is None:
        # delete files to apply, or files neither local nor in one S3 bucket: read whole
        arrow: pa.Table = scan.to_arrow() if tasks else table.schema().as_arrow().empty_table()
        con.register(f"{name}_arrow", arrow)
        con.execute(f'CREATE OR REPLACE VIEW "{name}" AS SELECT * FROM "{name}_arrow"')
        return len(tasks)
    from pyiceberg.io.pyarrow import schema_to_pyarrow

    schema = schema_to_pyarrow(table.schema(), include_field_ids=False)
    fs, paths = where
    con.register(name, files_dataset(table, tasks, paths, schema, fs))
    return len(tasks)


def open_session(
    settings: Settings | None = None,
    *,
    snapshot_id: int | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> SqlSession:
    """Connect DuckDB in this process and create the views (see the module docstring)."""
    import duckdb

    from lakehouse.tables import open_tables

    start, end = check_range(start, end)
    tables = open_tables(settings)
    table = tables.events
    snap = check_snapshot(table, snapshot_id)
    if snap is None:
        snap = table.metadata.current_snapshot_id
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    from pyiceberg.expressions import AlwaysTrue

    files = _register(con, "_events_files", table, snap, _row_filter(start, end))
    total = 0 if snap is None else len(list(table.scan(snapshot_id=snap).plan_files()))
    where = []
    if start is not None:
        where.append("client_ts >= $start")
    if end is not None:
        where.append("client_ts < $end")
    params = {"start": start, "end": end}

    def bound(text: str) -> str:
        # views cannot hold parameters: inline the two timestamps as typed literals
        for key, value in params.items():
            if value is not None:
                text = text.replace(f"${key}", f"TIMESTAMPTZ '{value.isoformat()}'")
        return text

    filt = (" WHERE " + " AND ".join(where)) if where else ""
    con.execute(bound(f"CREATE VIEW events AS SELECT * FROM _events_files{filt}"))
    # the ordered view numbers over the history up to end (start only filters rows)
    _register(con, "_ordered_files", table, snap, _row_filter(None, end))
    upto = " WHERE client_ts < $end" if end is not None else ""
    after = " WHERE client_ts >= $start" if start is not None else ""
    extra = ",\n    ".join(ordered_columns())
    con.execute(
        bound(
            "CREATE VIEW events_ordered AS SELECT * FROM (\n"
            f"SELECT e.*,\n    {extra}\nFROM (SELECT * FROM _ordered_files{upto}) AS e\n)"
            f"{after}"
        )
    )
    rejected = tables.rejected
    _register(con, "rejected", rejected, rejected.metadata.current_snapshot_id, AlwaysTrue())
    log.info("sql over snapshot %s: %d of %d data files", snap, files, total)
    return SqlSession(
        connection=con,
        snapshot_id=snap,
        files=files,
        files_in_snapshot=total,
        columns=tuple(f.name for f in table.schema().fields),
    )


def check_query(query: str) -> str:
    if not isinstance(query, str) or not query.strip():
        raise UsageError("the SQL query is empty")
    return query
