"""The ordered view ``<table>_ordered`` (``events_ordered``) in the events table's schema.

Its rows are those of the read API's ordered view (:func:`lakehouse.read.ordered`):
every event with ``event_seq``, ``prev_event_type`` and ``millis_since_prev``, defined by
:func:`lakehouse.read.ordered_view_sql`. That SELECT starts with ``e.*``; Trino stores a
view's columns when it is created, and a view whose ``*`` later expands to more columns
(the writers add columns by schema evolution) fails every query with ``VIEW_IS_STALE``.
So the view lists its columns explicitly around that SELECT: after a schema change it
keeps working with the columns it had, and ``lakehouse trino views`` (idempotent) brings
the new columns in.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lakehouse.engines.trino.client import connect, query
from lakehouse.engines.trino.endpoint import CATALOG_NAME
from lakehouse.engines.trino.sql import qualified, quote_ident, table_ref
from lakehouse.read.sequence import ORDERED_VIEW_COLUMNS, ordered_view_sql
from lakehouse.settings import Settings

if TYPE_CHECKING:
    from trino.dbapi import Connection

log = logging.getLogger(__name__)

ORDERED_SUFFIX = "_ordered"


def ordered_view_name(settings: Settings) -> str:
    """``events_ordered`` for the table ``analytics.events``."""
    return f"{settings.table.name}{ORDERED_SUFFIX}"


@dataclass(frozen=True)
class ViewResult:
    """One view created or replaced by :func:`create_views`."""

    view: str  # catalog.schema.name, unquoted
    table: str
    existed: bool
    columns: tuple[str, ...]
    columns_added: tuple[str, ...]  # columns the previous definition lacked
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "view": self.view,
            "table": self.table,
            "existed": self.existed,
            "columns": list(self.columns),
            "columns_added": list(self.columns_added),
            "seconds": round(self.seconds, 3),
        }


def table_columns(
    settings: Settings, connection: Connection, *, catalog: str = CATALOG_NAME
) -> tuple[str, ...]:
    """The events table's columns as Trino sees them now, in order."""
    return _columns(settings, connection, settings.table.name, catalog)


def _columns(
    settings: Settings, connection: Connection, name: str, catalog: str
) -> tuple[str, ...]:
    sql = (
        f"SELECT column_name FROM {qualified(catalog, 'information_schema', 'columns')} "
        "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position"
    )
    rows = query(sql, [settings.table.namespace, name], connection=connection).rows
    return tuple(str(r[0]) for r in rows)


def ordered_sql(
    settings: Settings,
    columns: tuple[str, ...],
    *,
    snapshot_id: int | None = None,
    catalog: str = CATALOG_NAME,
) -> str:
    """The ordered view's SELECT with an explicit column list (``columns``: the table's),
    over the table or, with ``snapshot_id``, over that snapshot (``FOR VERSION AS OF``)."""
    inner = ordered_view_sql(table_ref(settings, catalog=catalog, snapshot_id=snapshot_id))
    names = ", ".join(quote_ident(c) for c in (*columns, *ORDERED_VIEW_COLUMNS))
    return f"SELECT {names}\nFROM (\n{inner}\n) AS ordered_events"


def create_ordered_view(
    settings: Settings,
    *,
    port: int | None = None,
    connection: Connection | None = None,
    catalog: str = CATALOG_NAME,
) -> ViewResult:
    """``CREATE OR REPLACE VIEW <schema>.<table>_ordered`` over the current table columns."""
    began = time.monotonic()
    own = connection is None
    conn = connection or connect(settings, port)
    try:
        name = ordered_view_name(settings)
        before = _columns(settings, conn, name, catalog)
        columns = table_columns(settings, conn, catalog=catalog)
        view = qualified(catalog, settings.table.namespace, name)
        query(
            f"CREATE OR REPLACE VIEW {view} SECURITY INVOKER AS\n"
            + ordered_sql(settings, columns, catalog=catalog),
            connection=conn,
        )
        after = (*columns, *ORDERED_VIEW_COLUMNS)
        result = ViewResult(
            view=f"{catalog}.{settings.table.namespace}.{name}",
            table=f"{catalog}.{settings.table}",
            existed=bool(before),
            columns=after,
            columns_added=tuple(c for c in after if before and c not in before),
            seconds=time.monotonic() - began,
        )
    finally:
        if own:
            conn.close()  # type: ignore[no-untyped-call]
    log.info(
        "%s view %s (%d columns)",
        "replaced" if result.existed else "created",
        result.view,
        len(after),
    )
    return result


def create_views(
    settings: Settings, *, port: int | None = None, connection: Connection | None = None
) -> tuple[ViewResult, ...]:
    """Create or replace every view of the lakehouse (idempotent): the ordered view."""
    return (create_ordered_view(settings, port=port, connection=connection),)
