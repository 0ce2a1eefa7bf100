"""Create (idempotently) and load the events table and its companions."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import (
    NamespaceAlreadyExistsError,
    NoSuchTableError,
    TableAlreadyExistsError,
)
from pyiceberg.table import Table

from lakehouse import schema as spec
from lakehouse.errors import ConfigError
from lakehouse.settings import TableName
from lakehouse.storage import storage_error

log = logging.getLogger(__name__)

REJECTED_SUFFIX = "rejected"
INGESTED_SUFFIX = "ingested"


@dataclass(frozen=True)
class EventTables:
    """The events table with its companion tables."""

    events: Table
    rejected: Table
    ingested: Table


def ensure_tables(catalog: Catalog, name: TableName) -> tuple[EventTables, list[str]]:
    """Create the namespace and the three tables if missing. Returns the tables and the
    names of those this call created (empty when everything already existed)."""
    created: list[str] = []
    try:
        catalog.create_namespace(name.namespace)
        created.append(name.namespace)
    except NamespaceAlreadyExistsError:
        pass
    events = _ensure(
        catalog,
        name,
        created,
        schema=spec.EVENT_SCHEMA,
        partition_spec=spec.EVENT_PARTITION_SPEC,
        sort_order=spec.EVENT_SORT_ORDER,
        properties=spec.EVENT_TABLE_PROPERTIES,
    )
    rejected = _ensure(
        catalog,
        name.sibling(REJECTED_SUFFIX),
        created,
        schema=spec.REJECTS_SCHEMA,
        partition_spec=spec.REJECTS_PARTITION_SPEC,
        properties={**spec.COMPANION_PROPERTIES, "lakehouse.kind": "rejected"},
    )
    ingested = _ensure(
        catalog,
        name.sibling(INGESTED_SUFFIX),
        created,
        schema=spec.INGESTED_SCHEMA,
        properties={**spec.COMPANION_PROPERTIES, "lakehouse.kind": "ingested"},
    )
    return EventTables(events, rejected, ingested), created


def _ensure(catalog: Catalog, name: TableName, created: list[str], **kwargs: object) -> Table:
    try:
        return catalog.load_table(name.identifier)
    except NoSuchTableError:
        pass
    try:
        table = catalog.create_table(name.identifier, **kwargs)  # type: ignore[arg-type]
        created.append(str(name))
        log.info("created table %s at %s", name, table.location())
        return table
    except TableAlreadyExistsError:  # another process won the race
        return catalog.load_table(name.identifier)
    except OSError as exc:  # the warehouse could not be written
        warehouse = str(getattr(catalog, "properties", {}).get("warehouse", "the warehouse"))
        raise storage_error(exc, warehouse, f"create {name} in") from exc


def load_tables(catalog: Catalog, name: TableName) -> EventTables:
    """Load existing tables; a clear error says to run ``lakehouse init`` when missing."""
    try:
        return EventTables(
            catalog.load_table(name.identifier),
            catalog.load_table(name.sibling(REJECTED_SUFFIX).identifier),
            catalog.load_table(name.sibling(INGESTED_SUFFIX).identifier),
        )
    except NoSuchTableError as exc:
        raise ConfigError(
            f"table {name} (or a companion) does not exist in this catalog: run "
            f"`lakehouse init --table {name}` first"
        ) from exc
