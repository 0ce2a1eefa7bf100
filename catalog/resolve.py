"""Turn :class:`~lakehouse.settings.Settings` into a live pyiceberg catalog."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pyiceberg.catalog import Catalog, load_catalog
from pyiceberg.utils.config import Config

from lakehouse.errors import CatalogUnavailable, ConfigError
from lakehouse.settings import Settings
from lakehouse.storage import with_storage_defaults

log = logging.getLogger(__name__)

EMBEDDED_NAME = "lakehouse"


def embedded_catalog_properties(settings: Settings) -> dict[str, str]:
    """Properties of the embedded catalog: SQLite at ``$LAKEHOUSE_HOME/catalog.db``,
    warehouse ``file://$LAKEHOUSE_HOME/warehouse``.

    Any folder name works, including a space, ``%``, ``#``, ``?``, quotes or non-ASCII
    letters: the SQLite URL is built by SQLAlchemy (which escapes what its URL syntax
    needs), and when the path is not a plain ``file://`` URI the warehouse is the bare
    path, which pyiceberg's FileIO takes literally (it never decodes a ``file://`` URI,
    so ``Path.as_uri()``'s ``my%20lake`` would be a sibling folder of ``my lake``)."""
    from sqlalchemy.engine import URL

    home = settings.home.expanduser().resolve()
    return {
        "type": "sql",
        "uri": URL.create("sqlite", database=str(home / "catalog.db")).render_as_string(
            hide_password=False
        ),
        "warehouse": warehouse_location(home / "warehouse"),
        "init_catalog_tables": "true",
    }


def warehouse_location(folder: Path) -> str:
    """``file://`` + the absolute path when that is a URI as written (no character
    needs escaping: what every tool expects), else the bare path (see above)."""
    uri = folder.as_uri()
    return uri if uri == f"file://{folder}" else str(folder)


def open_catalog(settings: Settings) -> Catalog:
    """Open the catalog the settings name, creating the embedded one on first use."""
    if settings.catalog is None:
        home = settings.home.expanduser().resolve()
        try:
            (home / "warehouse").mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"cannot create LAKEHOUSE_HOME at {home}: {exc}. Set LAKEHOUSE_HOME or --home "
                "to a writable folder"
            ) from exc
        # The embedded catalog takes overrides the pyiceberg way, e.g.
        # PYICEBERG_CATALOG__LAKEHOUSE__WAREHOUSE=s3://bucket/prefix plus s3.* keys.
        props: dict[str, Any] = {
            **embedded_catalog_properties(settings),
            **(Config().get_catalog_config(EMBEDDED_NAME) or {}),
        }
        return _load(EMBEDDED_NAME, with_storage_defaults(props))
    # pyiceberg reads its environment once, at import; read it again now so the
    # configuration in force when this is called is the one used.
    props = Config().get_catalog_config(settings.catalog) or {}
    if not props:
        raise ConfigError(
            f"catalog {settings.catalog!r} is not configured. Configure it in .pyiceberg.yaml or "
            f"with PYICEBERG_CATALOG__{settings.catalog.upper()}__URI (and __TYPE, __WAREHOUSE, ...), "
            "or unset LAKEHOUSE_CATALOG / --catalog to use the embedded catalog"
        )
    return _load(settings.catalog, with_storage_defaults(dict(props)))


def _load(name: str, props: dict[str, Any]) -> Catalog:
    try:
        if str(props.get("type", "")).lower() == "sql":
            from catalog.sql import LakehouseSqlCatalog

            return LakehouseSqlCatalog(name, **{k: v for k, v in props.items() if k != "type"})
        return load_catalog(name, **props)
    except ValueError as exc:
        raise ConfigError(
            f"catalog {name!r} is not configured: {exc}. Configure it in .pyiceberg.yaml or with "
            f"PYICEBERG_CATALOG__{name.upper()}__URI (and __TYPE, __WAREHOUSE, ...), or unset "
            "LAKEHOUSE_CATALOG / --catalog to use the embedded catalog"
        ) from exc
    except ImportError as exc:
        raise ConfigError(f"catalog {name!r} needs a package that is not installed: {exc}") from exc
    except CatalogUnavailable:  # refused or dropped connection: transient, not the settings
        raise
    except Exception as exc:  # bad URI, bad option, ...
        from catalog.sql import is_connection_error, unavailable
        from lakehouse.redact import redact_text

        if is_connection_error(exc):  # another catalog type on SQLAlchemy
            raise unavailable(name, str(props.get("uri") or "") or None, exc) from exc
        raise ConfigError(
            f"cannot open catalog {name!r}: {type(exc).__name__}: {redact_text(str(exc))}"
        ) from exc
