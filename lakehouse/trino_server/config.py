"""Trino configuration: the ``lakehouse`` Iceberg catalog that points at the very catalog
the Python writers use, and the server's own files (config.properties, jvm.config).

Catalog mapping (pyiceberg -> Trino's Iceberg connector):

* embedded (no ``LAKEHOUSE_CATALOG``): pyiceberg SqlCatalog ``lakehouse`` on SQLite at
  ``$LAKEHOUSE_HOME/catalog.db`` -> ``iceberg.catalog.type=jdbc`` with the SQLite driver;
* a pyiceberg ``sql`` catalog on SQLite or PostgreSQL -> the same JDBC catalog, with
  ``iceberg.jdbc-catalog.catalog-name`` equal to the pyiceberg catalog's name (both
  programs keep their rows in the same ``iceberg_tables`` table, keyed by that name);
* a pyiceberg ``glue`` catalog -> ``iceberg.catalog.type=glue`` with the same region,
  endpoint, catalog id and (when given) keys.

The warehouse's scheme adds the file system: ``file://`` -> Trino's native local file
system, ``s3://`` -> its native S3 file system configured from pyiceberg's ``s3.*`` keys
(endpoint, region, path-style access, keys). Keys left out of the pyiceberg properties
are left out here too: Trino then uses the default AWS credential chain (environment,
profile, instance or task role). Catalog files may hold secrets: they are written with
mode 0600 and their values are never logged.

Other catalog types raise :class:`TrinoConfigError`; a new type plugs in by adding a
function to :data:`CATALOG_MAPPERS` (and a warehouse scheme to :data:`FILESYSTEM_MAPPERS`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from catalog import EMBEDDED_NAME, embedded_catalog_properties
from lakehouse.durations import format_duration
from lakehouse.engines.trino.endpoint import CATALOG_NAME, HOST
from lakehouse.engines.trino.errors import TrinoConfigError
from lakehouse.settings import Settings
from lakehouse.trino_server.install import Installation
from lakehouse.trino_server.instance import InstancePaths, ServerOptions
from lakehouse.trino_server.java import JavaRuntime

log = logging.getLogger(__name__)

ENVIRONMENT = "lakehouse"

CatalogMapper = Callable[[str, Mapping[str, Any]], dict[str, str]]
FilesystemMapper = Callable[[str, Mapping[str, Any]], dict[str, str]]


def pyiceberg_catalog_config(settings: Settings) -> tuple[str, dict[str, Any]]:
    """The pyiceberg name and properties of the settings' catalog, read now (not from
    pyiceberg's import-time configuration)."""
    from pyiceberg.utils.config import Config

    if settings.catalog is None:
        # The embedded catalog takes overrides the pyiceberg way (as ``open_catalog`` does),
        # e.g. PYICEBERG_CATALOG__LAKEHOUSE__WAREHOUSE=s3://bucket/prefix plus s3.* keys.
        return EMBEDDED_NAME, {
            **embedded_catalog_properties(settings),
            **(Config().get_catalog_config(EMBEDDED_NAME) or {}),
        }

    props = Config().get_catalog_config(settings.catalog) or {}
    if not props:
        raise TrinoConfigError(
            f"catalog {settings.catalog!r} is not configured. Configure it in .pyiceberg.yaml or "
            f"with PYICEBERG_CATALOG__{settings.catalog.upper()}__URI (and __TYPE, __WAREHOUSE), "
            "or unset LAKEHOUSE_CATALOG / --catalog to use the embedded catalog"
        )
    return settings.catalog, dict(props)


def trino_catalog_properties(
    settings: Settings, *, min_retention: str = "0s", orphan_min_retention: str = "1d"
) -> dict[str, str]:
    """The ``etc/catalog/lakehouse.properties`` of a Trino server reading the settings' catalog."""
    name, props = pyiceberg_catalog_config(settings)
    return catalog_properties_for(
        name, props, min_retention=min_retention, orphan_min_retention=orphan_min_retention
    )


def catalog_properties_for(
    name: str,
    props: Mapping[str, Any],
    *,
    min_retention: str = "0s",
    orphan_min_retention: str = "1d",
) -> dict[str, str]:
    """Trino Iceberg catalog properties for the pyiceberg catalog ``name`` with ``props``."""
    catalog_type = str(props.get("type") or _infer_type(name, props) or "").lower()
    mapper = CATALOG_MAPPERS.get(catalog_type)
    if mapper is None:
        supported = ", ".join(sorted(CATALOG_MAPPERS))
        raise TrinoConfigError(
            f"catalog {name!r} is of type {catalog_type or 'unknown'!r}, which the Trino tooling "
            f"cannot map yet (supported: {supported}). Query it another way, or use the embedded "
            "catalog (unset LAKEHOUSE_CATALOG)"
        )
    return {
        "connector.name": "iceberg",
        **mapper(name, props),
        # Floors of the procedures' retention_threshold (their default stays 7d). Orphans:
        # 1d, the rule of `maintain run` (in-flight writes look like orphans).
        "iceberg.expire-snapshots.min-retention": min_retention,
        "iceberg.remove-orphan-files.min-retention": orphan_min_retention,
    }


def _infer_type(name: str, props: Mapping[str, Any]) -> str | None:
    from pyiceberg.catalog import infer_catalog_type

    try:
        inferred = infer_catalog_type(name, dict(props))
    except ValueError:
        return None
    return inferred.value if inferred else None


def sql_catalog_properties(name: str, props: Mapping[str, Any]) -> dict[str, str]:
    """A pyiceberg ``sql`` catalog (SQLAlchemy URI) -> Trino's Iceberg JDBC catalog."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    uri = str(props.get("uri") or "")
    if not uri:
        raise TrinoConfigError(
            f"catalog {name!r} has no uri; set PYICEBERG_CATALOG__{name.upper()}__URI"
        )
    try:
        url = make_url(uri)
    except ArgumentError as exc:
        raise TrinoConfigError(f"catalog {name!r}: cannot read uri {uri!r}: {exc}") from exc
    backend = url.get_backend_name()
    out: dict[str, str] = {"iceberg.catalog.type": "jdbc"}
    if backend == "sqlite":
        database = url.database or ""
        if database in ("", ":memory:") or database.startswith("file::memory:"):
            raise TrinoConfigError(
                f"catalog {name!r} is an in-memory SQLite database, which Trino (another process) "
                "cannot see; give it a file (uri sqlite:////abs/path/catalog.db)"
            )
        out["iceberg.jdbc-catalog.driver-class"] = "org.sqlite.JDBC"
        out["iceberg.jdbc-catalog.connection-url"] = (
            f"jdbc:sqlite:{Path(database).expanduser().resolve()}"
        )
    elif backend == "postgresql":
        if not url.database:
            raise TrinoConfigError(
                f"catalog {name!r}: uri {url.render_as_string()} names no database"
            )
        host = url.host or "localhost"
        if ":" in host:  # IPv6 literal
            host = f"[{host}]"
        query = f"?{urlencode(sorted(url.query.items()), doseq=True)}" if url.query else ""
        out["iceberg.jdbc-catalog.driver-class"] = "org.postgresql.Driver"
        out["iceberg.jdbc-catalog.connection-url"] = (
            f"jdbc:postgresql://{host}:{url.port or 5432}/{url.database}{query}"
        )
        if url.username:
            out["iceberg.jdbc-catalog.connection-user"] = url.username
        if url.password is not None:
            out["iceberg.jdbc-catalog.connection-password"] = str(url.password)
    else:
        raise TrinoConfigError(
            f"catalog {name!r} uses a {backend} database; the Trino tooling maps SQL catalogs on "
            "SQLite and PostgreSQL only"
        )
    warehouse = _warehouse_uri(name, props)
    out["iceberg.jdbc-catalog.catalog-name"] = name
    out["iceberg.jdbc-catalog.default-warehouse-dir"] = warehouse
    # V1 rows carry iceberg_type (TABLE/VIEW), which pyiceberg 0.12 creates: views work.
    out["iceberg.jdbc-catalog.schema-version"] = "V1"
    out.update(filesystem_properties(name, warehouse, props))
    return out


def _warehouse_uri(name: str, props: Mapping[str, Any]) -> str:
    warehouse = str(props.get("warehouse") or "")
    if not warehouse:
        raise TrinoConfigError(
            f"catalog {name!r} has no warehouse, which Trino needs for new tables; set "
            f"PYICEBERG_CATALOG__{name.upper()}__WAREHOUSE (e.g. file:///abs/warehouse)"
        )
    if "://" not in warehouse:  # a bare path: Trino only takes URIs
        return Path(warehouse).expanduser().resolve().as_uri()
    return warehouse


def local_filesystem_properties(name: str, props: Mapping[str, Any]) -> dict[str, str]:
    """``file://`` tables: Trino's native local file system rooted at ``/``."""
    return {"fs.native-local.enabled": "true", "local.location": "/"}


def filesystem_properties(name: str, warehouse: str, props: Mapping[str, Any]) -> dict[str, str]:
    scheme = urlsplit(warehouse).scheme.lower()
    mapper = FILESYSTEM_MAPPERS.get(scheme)
    if mapper is None:
        raise TrinoConfigError(
            f"catalog {name!r} keeps its tables at {warehouse}; the Trino tooling supports "
            f"{', '.join(s + '://' for s in sorted(FILESYSTEM_MAPPERS))} warehouses so far"
        )
    return mapper(name, props)


def _prop(props: Mapping[str, Any], *keys: str) -> str | None:
    """The first of ``keys`` set (non-empty) in ``props``, as text."""
    for key in keys:
        value = props.get(key)
        if value is not None and str(value) != "":
            return str(value)
    return None


def _truthy(value: str | None) -> bool:
    return value is not None and value.strip().lower() in {"1", "true", "yes", "on"}


def _key_pair(
    name: str, props: Mapping[str, Any], prefix: str, what: str
) -> tuple[str, str] | None:
    """(access key, secret key) from ``<prefix>.*`` or else ``client.*`` properties; None
    when neither is set (Trino then uses the default AWS chain). Values never appear in
    messages or logs."""
    for scope in (prefix, "client"):
        access = _prop(props, f"{scope}.access-key-id")
        secret = _prop(props, f"{scope}.secret-access-key")
        if access is None and secret is None:
            continue
        if access is None or secret is None:
            missing = f"{scope}.secret-access-key" if secret is None else f"{scope}.access-key-id"
            raise TrinoConfigError(
                f"catalog {name!r}: {what} has only half a key pair ({missing} is missing); set "
                "both, or neither to use the default AWS credential chain"
            )
        if _prop(props, f"{scope}.session-token") is not None:
            # Trino's Glue and S3 clients take no session token in their properties: static
            # temporary keys without it would be refused. Use the default chain instead.
            log.warning(
                "catalog %r: %s.session-token is set; Trino cannot take temporary keys from its "
                "catalog file, so %s uses the default AWS credential chain (export "
                "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN, or a profile "
                "or role, before `lakehouse trino start`)",
                name,
                scope,
                what,
            )
            return None
        return access, secret
    return None


def s3_filesystem_properties(name: str, props: Mapping[str, Any]) -> dict[str, str]:
    """``s3://`` tables: Trino's native S3 file system from pyiceberg's ``s3.*`` keys
    (``client.*`` as fallbacks, as pyiceberg does)."""
    out = {"fs.native-s3.enabled": "true"}
    endpoint = _prop(props, "s3.endpoint")
    region = _prop(props, "s3.region", "client.region", "glue.region")
    if endpoint:
        out["s3.endpoint"] = endpoint
    if region:
        out["s3.region"] = region
    path_style = props.get("s3.path-style-access")
    virtual = _truthy(_prop(props, "s3.force-virtual-addressing"))
    if _truthy(None if path_style is None else str(path_style)) or (
        endpoint and path_style is None and not virtual
    ):
        # An S3-compatible endpoint (MinIO, moto, ...) usually serves path-style URLs only.
        out["s3.path-style-access"] = "true"
    role = _prop(props, "s3.role-arn", "client.role-arn")
    if role:
        out["s3.iam-role"] = role
    keys = _key_pair(name, props, "s3", "S3")
    if keys is not None:
        out["s3.aws-access-key"], out["s3.aws-secret-key"] = keys
    return out


def glue_catalog_properties(name: str, props: Mapping[str, Any]) -> dict[str, str]:
    """A pyiceberg ``glue`` catalog -> Trino's Iceberg Glue catalog (same Glue Data Catalog:
    pyiceberg registers each table with ``table_type=ICEBERG`` and its ``metadata_location``,
    which is what Trino reads), plus the file system of the warehouse (S3 by default)."""
    out: dict[str, str] = {"iceberg.catalog.type": "glue"}
    region = _prop(props, "glue.region", "client.region")
    endpoint = _prop(props, "glue.endpoint")
    if endpoint and not region:
        raise TrinoConfigError(
            f"catalog {name!r} sets glue.endpoint but no region; Trino needs one with an "
            f"endpoint: set PYICEBERG_CATALOG__{name.upper()}__GLUE__REGION"
        )
    if region:
        out["hive.metastore.glue.region"] = region
    if endpoint:
        out["hive.metastore.glue.endpoint-url"] = endpoint
    catalog_id = _prop(props, "glue.id")
    if catalog_id:
        out["hive.metastore.glue.catalogid"] = catalog_id
    role = _prop(props, "client.role-arn")
    if role:
        out["hive.metastore.glue.iam-role"] = role
    keys = _key_pair(name, props, "glue", "Glue")
    if keys is not None:
        out["hive.metastore.glue.aws-access-key"], out["hive.metastore.glue.aws-secret-key"] = keys
    # Like pyiceberg (default true): no archived table version per commit.
    skip_archive = _prop(props, "glue.skip-archive")
    out["hive.metastore.glue.skip-archive"] = (
        "true" if skip_archive is None or _truthy(skip_archive) else "false"
    )
    warehouse = _prop(props, "warehouse")
    if warehouse:
        warehouse = _warehouse_uri(name, props)
        out["hive.metastore.glue.default-warehouse-dir"] = warehouse
        out.update(filesystem_properties(name, warehouse, props))
    else:  # Glue tables live on S3
        out.update(s3_filesystem_properties(name, props))
    return out


CATALOG_MAPPERS: dict[str, CatalogMapper] = {
    "sql": sql_catalog_properties,
    "glue": glue_catalog_properties,
}
FILESYSTEM_MAPPERS: dict[str, FilesystemMapper] = {
    "file": local_filesystem_properties,
    "s3": s3_filesystem_properties,
    "s3a": s3_filesystem_properties,
    "s3n": s3_filesystem_properties,
}


def all_catalogs(settings: Settings, options: ServerOptions) -> dict[str, dict[str, str]]:
    """Every Trino catalog of a server: ``lakehouse`` plus the extra catalogs by name."""
    floors = {
        "min_retention": format_duration(options.min_retention),
        "orphan_min_retention": format_duration(options.orphan_min_retention),
    }
    catalogs = {CATALOG_NAME: trino_catalog_properties(settings, **floors)}
    for extra in options.extra_catalogs:
        catalogs[extra] = trino_catalog_properties(replace(settings, catalog=extra), **floors)
    return catalogs


def server_properties(
    paths: InstancePaths, installation: Installation, options: ServerOptions, *, node_id: str
) -> dict[str, str]:
    """``config.properties`` of a single-node server that listens on 127.0.0.1 only."""
    memory = options.query_max_memory_per_node
    return {
        "coordinator": "true",
        "node-scheduler.include-coordinator": "true",
        "node.environment": ENVIRONMENT,
        "node.id": node_id,
        # Trino 476 has no http-server.http.host: the HTTP server binds to node.bind-ip.
        "node.bind-ip": HOST,
        "node.internal-address": HOST,
        "http-server.http.port": str(options.port),
        "discovery.uri": f"http://{HOST}:{options.port}",
        "http-server.log.path": str(paths.http_log),
        "catalog.config-dir": str(paths.catalog_dir),
        "plugin.dir": str(installation.plugin_dir),
        "query.max-memory": memory,
        "query.max-memory-per-node": memory,
    }


def jvm_options(java: JavaRuntime, options: ServerOptions) -> list[str]:
    """``jvm.config``: Trino's recommended flags, sized for a small machine, plus what
    Java 24+ needs (the vector API module, Unsafe and native access allowed)."""
    flags = [
        "-server",
        f"-Xmx{options.heap}",
        "-XX:+UseG1GC",
        "-XX:G1HeapRegionSize=32M",
        "-XX:+ExplicitGCInvokesConcurrent",
        "-XX:+ExitOnOutOfMemoryError",
        "-XX:-OmitStackTraceInFastThrow",
        "-XX:ReservedCodeCacheSize=256M",
        "-XX:PerMethodRecompilationCutoff=10000",
        "-XX:PerBytecodeRecompilationCutoff=10000",
        "-Djdk.attach.allowAttachSelf=true",
        "-Djdk.nio.maxCachedBufferSize=2000000",
        "-Dfile.encoding=UTF-8",
        "-XX:+EnableDynamicAgentLoading",
        "--add-modules=jdk.incubator.vector",
        "--enable-native-access=ALL-UNNAMED",
    ]
    if java.major >= 23:  # the flag exists from Java 23 (JEP 471)
        flags.append("--sun-misc-unsafe-memory-access=allow")
    return flags


LOG_LEVELS = {"io.trino": "INFO", "com.google.inject.internal.util": "ERROR"}


def escape_property(text: str) -> str:
    """Escape a key or value for a Java ``.properties`` file."""
    out = text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return "\\ " + out[1:] if out.startswith(" ") else out


def render_properties(props: Mapping[str, str], header: str = "") -> str:
    lines = [f"# {line}" for line in header.splitlines()]
    lines.extend(f"{escape_property(k)}={escape_property(v)}" for k, v in props.items())
    return "\n".join(lines) + "\n"


def write_config(
    paths: InstancePaths,
    *,
    settings: Settings,
    installation: Installation,
    java: JavaRuntime,
    options: ServerOptions,
    node_id: str,
    catalogs: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, dict[str, str]]:
    """Write every file under ``etc/`` afresh (catalog files of earlier runs are removed);
    returns the catalogs written (``catalogs``, or those of the settings and options)."""
    if catalogs is None:
        catalogs = all_catalogs(settings, options)  # may raise: before touching any file
    paths.make_dirs()
    header = "Written by `lakehouse trino start`; rewritten at every start."
    paths.config_file.write_text(
        render_properties(server_properties(paths, installation, options, node_id=node_id), header)
    )
    paths.jvm_config.write_text(f"# {header}\n" + "\n".join(jvm_options(java, options)) + "\n")
    paths.log_properties.write_text(render_properties(LOG_LEVELS, header))
    for old in paths.catalog_dir.glob("*.properties"):
        old.unlink()
    for name, props in catalogs.items():
        # Catalog files may hold a database password: readable by the owner only.
        fd = os.open(
            paths.catalog_dir / f"{name}.properties", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600
        )
        with os.fdopen(fd, "w") as handle:
            handle.write(render_properties(props, header))
    return {name: dict(props) for name, props in catalogs.items()}
