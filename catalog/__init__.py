"""Catalog resolution and committing.

Resolution: the embedded default (SQLite + local warehouse, no server), or any catalog
configured the pyiceberg way (PostgreSQL SQL catalog, AWS Glue, REST, ...). Committing:
one transaction class and one commit function with one retry policy, used by the
writers, maintenance, schema evolution, expiry and the maintenance lease. Every private
pyiceberg API the project uses lives in this package.

Public API: :func:`open_catalog`, :func:`embedded_catalog_properties`, :data:`EMBEDDED_NAME`,
:func:`commit_with_retries`, :class:`RetryPolicy`, :class:`Conflict`,
:class:`CommitConflictError`, :class:`LakehouseTransaction`, :func:`begin`.
"""

from catalog.avro_readers import install as _install_avro_readers
from catalog.commit import CommitConflictError, Conflict, RetryPolicy, commit_with_retries
from catalog.resolve import EMBEDDED_NAME, embedded_catalog_properties, open_catalog
from catalog.snapshot_index import install as _install_snapshot_index
from catalog.transaction import LakehouseTransaction, begin

_install_snapshot_index()  # snapshot lookups by id in constant time (catalog.snapshot_index)
_install_avro_readers()  # Avro reader trees built once per schema (catalog.avro_readers)

__all__ = [
    "EMBEDDED_NAME",
    "CommitConflictError",
    "Conflict",
    "LakehouseTransaction",
    "RetryPolicy",
    "begin",
    "commit_with_retries",
    "embedded_catalog_properties",
    "open_catalog",
]
