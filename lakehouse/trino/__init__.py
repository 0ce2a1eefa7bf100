"""Trino tooling: install a Trino 476 server into a cache, run it on 127.0.0.1 with an
Iceberg catalog ``lakehouse`` that reads the very catalog the Python writers use, and
query it.

Modules: :mod:`~lakehouse.trino.install` (download by Maven coordinates, verify, cache),
:mod:`~lakehouse.trino.java` (find a Java 24+ runtime), :mod:`~lakehouse.trino.config`
(catalog mapping and server files), :mod:`~lakehouse.trino.server` (start/stop/status),
:mod:`~lakehouse.trino.client` (DB-API connection and queries).

Built on those, and imported on demand (they load the read API, funnels, maintenance):
:mod:`~lakehouse.trino.views` (the ordered view ``events_ordered``),
:mod:`~lakehouse.trino.funnel` (the ``trino`` funnel engine),
:mod:`~lakehouse.trino.maintenance` (the maintenance plan carried out by Trino:
:mod:`~lakehouse.trino.optimize`, :mod:`~lakehouse.trino.procedures`),
:mod:`~lakehouse.trino.sql` (quoting and typed literals).
"""

from lakehouse.trino.client import QueryResult, connect, query
from lakehouse.trino.config import CATALOG_NAME, trino_catalog_properties
from lakehouse.trino.errors import (
    JavaNotFoundError,
    PortInUseError,
    TrinoConfigError,
    TrinoError,
    TrinoInstallError,
    TrinoNotInstalledError,
    TrinoNotRunningError,
    TrinoQueryError,
    TrinoStartError,
)
from lakehouse.trino.install import (
    TRINO_VERSION,
    Installation,
    InstallResult,
    find_installation,
    install,
    trino_home,
)
from lakehouse.trino.instance import DEFAULT_PORT, InstancePaths, ServerOptions, instance_paths
from lakehouse.trino.java import JavaRuntime, find_java
from lakehouse.trino.progress import ConsoleReporter, LogReporter, NullReporter, Reporter
from lakehouse.trino.server import StartResult, StopResult, TrinoStatus, start, status, stop

__all__ = [
    "CATALOG_NAME",
    "DEFAULT_PORT",
    "TRINO_VERSION",
    "ConsoleReporter",
    "InstallResult",
    "Installation",
    "InstancePaths",
    "JavaNotFoundError",
    "JavaRuntime",
    "LogReporter",
    "NullReporter",
    "PortInUseError",
    "QueryResult",
    "Reporter",
    "ServerOptions",
    "StartResult",
    "StopResult",
    "TrinoConfigError",
    "TrinoError",
    "TrinoInstallError",
    "TrinoNotInstalledError",
    "TrinoNotRunningError",
    "TrinoQueryError",
    "TrinoStartError",
    "TrinoStatus",
    "connect",
    "find_installation",
    "find_java",
    "install",
    "instance_paths",
    "query",
    "start",
    "status",
    "stop",
    "trino_catalog_properties",
    "trino_home",
]
