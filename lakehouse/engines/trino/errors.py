"""Errors of the Trino tooling. Each says what went wrong and what to do about it."""

from __future__ import annotations

from lakehouse.errors import ComponentError, ConfigError


class TrinoError(ComponentError):
    """Trino could not be installed, started, stopped or queried."""


class TrinoConfigError(ConfigError):
    """The lakehouse catalog cannot be expressed as a Trino catalog (unsupported type,
    an in-memory database, a missing property, ...)."""


class JavaNotFoundError(TrinoError):
    """No Java runtime new enough for Trino was found."""


class TrinoInstallError(TrinoError):
    """Downloading or unpacking the Trino server failed."""


class TrinoNotInstalledError(TrinoError):
    """The Trino server is not in the cache yet (run ``lakehouse trino install``)."""


class PortInUseError(TrinoError):
    """The HTTP port is taken by another process."""


class TrinoStartError(TrinoError):
    """The server process died or did not become ready; the message carries the log tail."""


class TrinoNotRunningError(TrinoError):
    """No server of ours answers on that port."""


class TrinoQueryError(TrinoError):
    """Trino refused or failed a query."""
