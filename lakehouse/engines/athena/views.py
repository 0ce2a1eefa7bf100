"""``lakehouse athena views``: the ordered view ``<table>_ordered`` as an Athena view.

The view sits beside the events table in its Glue database. Its columns are read from
Athena itself (``SELECT * FROM <table> LIMIT 0``: the types Athena sees), and its body is
:func:`lakehouse.engines.athena.sql.ordered_view_select` (the read API's ordered view, in the
form an Athena view can take). ``CREATE OR REPLACE VIEW`` makes it idempotent: run it
again after the writers add columns.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from lakehouse.engines.athena.client import AthenaClient
from lakehouse.engines.athena.config import AthenaConfig
from lakehouse.engines.athena.sql import (
    create_view_sql,
    is_timestamp_tz,
    ordered_view_select,
    qualified,
    table_ref,
)
from lakehouse.settings import Settings, TableName

log = logging.getLogger(__name__)

ORDERED_SUFFIX = "ordered"


def ordered_view_name(table: TableName) -> TableName:
    """``analytics.events_ordered`` for ``analytics.events``."""
    return table.sibling(ORDERED_SUFFIX)


def columns_probe_sql(table: TableName) -> str:
    """A query returning no rows whose result metadata lists the table's columns."""
    return f"SELECT * FROM {table_ref(table)} LIMIT 0"


def ordered_view_statement(table: TableName, columns: list[tuple[str, str]]) -> str:
    """The full ``CREATE OR REPLACE VIEW`` text for ``table`` with these columns."""
    view = ordered_view_name(table)
    select = ordered_view_select(table_ref(table), columns)
    return create_view_sql(qualified(view.namespace, view.name), select)


@dataclass(frozen=True)
class ViewResult:
    """One view created or replaced on Athena."""

    view: str  # namespace.name
    table: str
    columns: tuple[str, ...]
    utc_columns: tuple[str, ...]  # timestamp with time zone columns shown as UTC timestamps
    query_id: str
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "view": self.view,
            "table": self.table,
            "columns": list(self.columns),
            "utc_columns": list(self.utc_columns),
            "query_id": self.query_id,
            "seconds": round(self.seconds, 3),
        }


def create_ordered_view(
    settings: Settings | None = None,
    *,
    config: AthenaConfig | None = None,
    client: AthenaClient | None = None,
) -> ViewResult:
    """Create or replace ``<table>_ordered`` on Athena; returns what was created."""
    settings = settings or Settings.from_env()
    athena = client or AthenaClient(config or AthenaConfig.from_env(settings))
    began = time.perf_counter()
    probe = athena.execute(columns_probe_sql(settings.table))
    columns = list(zip(probe.columns, probe.types, strict=True))
    statement = ordered_view_statement(settings.table, columns)
    execution = athena.run(statement)
    view = ordered_view_name(settings.table)
    result = ViewResult(
        view=str(view),
        table=str(settings.table),
        columns=(*probe.columns, "event_seq", "prev_event_type", "millis_since_prev"),
        utc_columns=tuple(name for name, kind in columns if is_timestamp_tz(kind)),
        query_id=execution.query_id,
        seconds=time.perf_counter() - began,
    )
    log.info("athena view %s created over %s (%s)", result.view, result.table, result.query_id)
    return result
