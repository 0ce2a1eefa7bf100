"""The events table and its companions: created by ``lakehouse init`` only, opened by
everything else through :func:`open_tables` / :func:`open_events_table`.

Names ending in a companion suffix (``_rejected``, ``_ingested``, ``_ordered``) are
refused as events tables. Opening never creates anything unless asked to
(``create=True``: ``lakehouse init``, ``lakehouse ingest --create``, the Python writer):
a missing table, or a missing ``LAKEHOUSE_HOME`` of the embedded catalog, is a
:class:`~lakehouse.errors.ConfigError` that says to run ``lakehouse init``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyiceberg.exceptions import (
    NamespaceAlreadyExistsError,
    NoSuchTableError,
    TableAlreadyExistsError,
)

from lakehouse import schema as spec
from lakehouse import summary
from lakehouse.errors import ConfigError
from lakehouse.settings import (
    COMPANION_SUFFIXES,
    INGESTED_SUFFIX,
    REJECTED_SUFFIX,
    Settings,
    TableName,
)
from lakehouse.storage import storage_error

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table

log = logging.getLogger(__name__)

__all__ = [
    "COMPANION_SUFFIXES",
    "INGESTED_SUFFIX",
    "REJECTED_SUFFIX",
    "EventTables",
    "ensure_tables",
    "load_tables",
    "open_events_table",
    "open_tables",
    "require_home",
]


@dataclass(frozen=True)
class EventTables:
    """The events table with its companion tables."""

    events: Table
    rejected: Table
    ingested: Table


def open_tables(
    settings: Settings | None = None,
    *,
    create: bool = False,
    catalog: Catalog | None = None,
) -> EventTables:
    """The events table the settings name, with its companions. With ``create`` the
    missing ones are created (idempotent); without it nothing is created, and a missing
    table or home folder is a :class:`ConfigError` saying to run ``lakehouse init``."""
    settings = settings or Settings.from_env()
    settings.table.check_events_name()
    if catalog is None:
        from catalog import open_catalog

        if not create:
            require_home(settings)
        catalog = open_catalog(settings)
    if create:
        return ensure_tables(catalog, settings.table)[0]
    return load_tables(catalog, settings.table)


def open_events_table(settings: Settings | None = None, *, catalog: Catalog | None = None) -> Table:
    """The events table the settings name (never created: run ``lakehouse init``)."""
    return open_tables(settings, catalog=catalog).events


def require_home(settings: Settings) -> None:
    """For the embedded catalog: a :class:`ConfigError` when ``LAKEHOUSE_HOME`` or its
    catalog database does not exist, so a read or maintenance command never creates
    them (opening the embedded catalog creates both)."""
    if settings.catalog is not None:
        return
    from pyiceberg.utils.config import Config

    from catalog import EMBEDDED_NAME

    home = settings.home.expanduser().resolve()
    overrides = Config().get_catalog_config(EMBEDDED_NAME) or {}
    missing = not home.is_dir() or ("uri" not in overrides and not (home / "catalog.db").exists())
    if missing:
        raise ConfigError(
            f"no lakehouse at {home} (LAKEHOUSE_HOME / --home): run "
            f"`lakehouse init --home {settings.home}` first, or point --home at an existing one"
        )


def ensure_tables(catalog: Catalog, name: TableName) -> tuple[EventTables, list[str]]:
    """Create the namespace and the three tables if missing. Returns the tables and the
    names of those this call created (empty when everything already existed)."""
    name.check_events_name()
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
        properties={**spec.COMPANION_PROPERTIES, summary.KIND: summary.TABLE_REJECTED},
    )
    ingested = _ensure(
        catalog,
        name.sibling(INGESTED_SUFFIX),
        created,
        schema=spec.INGESTED_SCHEMA,
        properties={
            **spec.COMPANION_PROPERTIES,
            summary.KIND: summary.TABLE_INGESTED,
            # full bounds on ids let lookups skip ledger files (writers.ledger)
            "write.metadata.metrics.column.source": "full",
        },
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
    name.check_events_name()
    try:
        return EventTables(
            catalog.load_table(name.identifier),
            catalog.load_table(name.sibling(REJECTED_SUFFIX).identifier),
            catalog.load_table(name.sibling(INGESTED_SUFFIX).identifier),
        )
    except NoSuchTableError as exc:
        raise ConfigError(
            f"table {name} (or a companion) does not exist in this catalog: run "
            f"`lakehouse init --table {name}` first (or `lakehouse ingest --create`)"
        ) from exc
