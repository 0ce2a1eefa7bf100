"""The SQL catalog (SQLite, PostgreSQL) with commit staging that scales with the commit,
not with the table's history (see :mod:`catalog.metadata`), and one error for a catalog
database that cannot be reached.

pyiceberg lets SQLAlchemy's connection errors through as they are
(``sqlalchemy.exc.OperationalError``: refused, dropped or reset connections, a server
shutting down, a locked SQLite file), which nothing above knows to retry. Every catalog
call the writers, readers and maintenance make goes through this class, which turns
those errors into :class:`~lakehouse.errors.CatalogUnavailable` (retryable), with a
message that names the catalog and never its password.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from pyiceberg.catalog import Catalog
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.io import FileIO
from pyiceberg.table import StagedTable, Table
from pyiceberg.table.locations import load_location_provider
from pyiceberg.table.metadata import TableMetadata

from catalog.metadata import METADATA_CACHE, apply_updates, write_metadata
from lakehouse.errors import CatalogUnavailable

F = TypeVar("F", bound=Callable[..., Any])


def is_connection_error(exc: BaseException) -> bool:
    """Whether a SQLAlchemy error means the database could not be used right now (as
    opposed to a bad statement, bad settings or a constraint): any DBAPI error that
    invalidated the connection; an ``OperationalError`` or ``InterfaceError`` of a server
    that is not about authentication, options or a missing database; for SQLite only a
    locked or busy database file."""
    from sqlalchemy import exc as sa_exc

    if not isinstance(exc, sa_exc.DBAPIError):
        return False
    orig = exc.orig
    text = str(orig).lower()
    if type(orig).__module__.split(".")[0] == "sqlite3":  # a file, not a server
        # "database is locked" is transient; "no such table", "unable to open database
        # file" (a wrong path) are not.
        return "locked" in text or "busy" in text
    if exc.connection_invalidated:
        return True
    if not isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError)):
        return False
    code = getattr(orig, "pgcode", None)  # PostgreSQL's SQLSTATE, when the server sent one
    if code and str(code)[:2] not in _TRANSIENT_SQLSTATE_CLASSES:
        return False
    # The driver also raises OperationalError for what retrying will not fix.
    return not any(marker in text for marker in _NOT_TRANSIENT)


# SQLSTATE classes: connection exception, insufficient resources (too many clients),
# operator intervention (shutting down, starting up, terminated by an administrator).
_TRANSIENT_SQLSTATE_CLASSES = ("08", "53", "57")
_NOT_TRANSIENT = (
    "authentication failed",
    "no pg_hba.conf entry",
    "does not exist",
    "permission denied",
    "invalid ",  # invalid sslmode value, invalid connection option, invalid dsn, ...
    "unrecognized",
    "does not support ssl",
    "certificate",
)


def unavailable(name: str, uri: str | None, exc: BaseException) -> CatalogUnavailable:
    """The :class:`CatalogUnavailable` for ``exc`` on catalog ``name`` at ``uri``: the
    URI with its password and secret parameters masked, the driver's first line of
    explanation (redacted too), never the SQL statement or its parameters."""
    from lakehouse.redact import redact_text, redact_uri

    cause = getattr(exc, "orig", None) or exc
    reason = next((ln.strip() for ln in str(cause).splitlines() if ln.strip()), "")
    where = f" at {redact_uri(uri)}" if uri else ""
    return CatalogUnavailable(
        f"catalog {name!r}{where} is unreachable: {type(cause).__name__}: "
        f"{redact_text(reason)[:300]}. The database may be down or restarting: run again "
        "later (or check the host and port in the catalog URI)"
    )


def _guarded(method: F) -> F:
    @functools.wraps(method)
    def wrapper(self: LakehouseSqlCatalog, *args: Any, **kwargs: Any) -> Any:
        with self.connection_errors():
            return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


class LakehouseSqlCatalog(SqlCatalog):
    """pyiceberg's ``SqlCatalog``; the staging of commits to existing tables differs, and
    a catalog database that cannot be reached raises :class:`CatalogUnavailable`."""

    def __init__(self, name: str, **properties: str) -> None:
        self.name = name  # the error message needs it before pyiceberg sets it
        self.properties = properties
        with self.connection_errors():
            super().__init__(name, **properties)

    @contextmanager
    def connection_errors(self) -> Iterator[None]:
        """Turn connection-level SQLAlchemy errors into :class:`CatalogUnavailable`."""
        try:
            yield
        except Exception as exc:
            if not is_connection_error(exc):
                raise
            uri = self.properties.get("uri")
            raise unavailable(self.name, str(uri) if uri else None, exc) from exc

    @staticmethod
    def _write_metadata(metadata: TableMetadata, io: FileIO, metadata_path: str) -> None:
        """pyiceberg's, with each snapshot's JSON reused (:func:`write_metadata`)."""
        write_metadata(metadata, io, metadata_path)

    def _convert_orm_to_iceberg(self, orm_table: Any) -> Table:
        """pyiceberg's, with the parsed metadata reused from :data:`METADATA_CACHE`."""
        location = orm_table.metadata_location
        cached = METADATA_CACHE.get(location) if location else None
        if cached is None or not orm_table.table_namespace or not orm_table.table_name:
            table = super()._convert_orm_to_iceberg(orm_table)
            METADATA_CACHE.put(table.metadata_location, table.metadata)
            return table
        return Table(
            identifier=(
                *Catalog.identifier_to_tuple(orm_table.table_namespace),
                orm_table.table_name,
            ),
            metadata=cached,
            metadata_location=location,
            io=self._load_file_io(cached.properties, location),
            catalog=self,
        )

    def _update_and_stage_table(
        self,
        current_table: Table | None,
        table_identifier: Any,
        requirements: tuple[Any, ...],
        updates: tuple[Any, ...],
    ) -> StagedTable:
        if current_table is None:  # creating a table: keep pyiceberg's validated path
            return super()._update_and_stage_table(
                current_table, table_identifier, requirements, updates
            )
        for requirement in requirements:
            requirement.validate(current_table.metadata)
        metadata = apply_updates(
            current_table.metadata, updates, metadata_location=current_table.metadata_location
        )
        version = self._parse_metadata_version(current_table.metadata_location) + 1
        provider = load_location_provider(metadata.location, metadata.properties)
        location = provider.new_table_metadata_file_location(version)
        # the file at this new, unique location will hold exactly this metadata (if the
        # commit fails, the catalog never points at it and nobody looks it up)
        METADATA_CACHE.put(location, metadata)
        return StagedTable(
            identifier=table_identifier,
            metadata=metadata,
            metadata_location=location,
            io=self._load_file_io(properties=metadata.properties, location=location),
            catalog=self,
        )


# Every public call that reaches the database. Calls pyiceberg builds on these
# (``create_table_if_not_exists``, ``table_exists``, ``Table.refresh``, every commit of a
# transaction) go through them.
for _name in (
    "create_table",
    "register_table",
    "load_table",
    "drop_table",
    "purge_table",
    "rename_table",
    "commit_table",
    "namespace_exists",
    "create_namespace",
    "drop_namespace",
    "list_tables",
    "list_namespaces",
    "load_namespace_properties",
    "update_namespace_properties",
):
    setattr(LakehouseSqlCatalog, _name, _guarded(getattr(SqlCatalog, _name)))
del _name
