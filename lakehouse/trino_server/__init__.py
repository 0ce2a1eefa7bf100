"""Trino server tooling: install a Trino 476 server into a cache, run it on 127.0.0.1 with
an Iceberg catalog ``lakehouse`` that reads the very catalog the Python writers use.

Modules: :mod:`~lakehouse.trino_server.install` (download by Maven coordinates, verify,
cache), :mod:`~lakehouse.trino_server.maven`, :mod:`~lakehouse.trino_server.java` (find a
Java 24+ runtime), :mod:`~lakehouse.trino_server.config` (catalog mapping and server
files), :mod:`~lakehouse.trino_server.instance`, :mod:`~lakehouse.trino_server.process`,
:mod:`~lakehouse.trino_server.server` (start/stop/status),
:mod:`~lakehouse.trino_server.progress`.

Querying the server (client, views, funnel, maintenance) is the engine,
:mod:`lakehouse.engines.trino`; its client and errors are re-exported here.
"""

from lakehouse.engines.trino.client import QueryResult, connect, query
from lakehouse.engines.trino.endpoint import CATALOG_NAME, DEFAULT_PORT
from lakehouse.engines.trino.errors import (
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
from lakehouse.trino_server.config import trino_catalog_properties
from lakehouse.trino_server.install import (
    TRINO_VERSION,
    Installation,
    InstallResult,
    find_installation,
    install,
    trino_home,
)
from lakehouse.trino_server.instance import (
    InstancePaths,
    ServerOptions,
    instance_paths,
)
from lakehouse.trino_server.java import JavaRuntime, find_java
from lakehouse.trino_server.progress import ConsoleReporter, LogReporter, NullReporter, Reporter
from lakehouse.trino_server.server import StartResult, StopResult, TrinoStatus, start, status, stop

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
