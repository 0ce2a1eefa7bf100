"""Catalog resolution: the embedded default (SQLite + local warehouse, no server),
or any catalog configured the pyiceberg way (PostgreSQL SQL catalog, AWS Glue, REST, ...).

Public API: :func:`open_catalog`, :func:`embedded_catalog_properties`, :data:`EMBEDDED_NAME`.
"""

from catalog.resolve import EMBEDDED_NAME, embedded_catalog_properties, open_catalog

__all__ = ["EMBEDDED_NAME", "embedded_catalog_properties", "open_catalog"]
