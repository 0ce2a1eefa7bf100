"""Where the engine finds its server: ``127.0.0.1``, the port of ``LAKEHOUSE_TRINO_PORT``
(else 8080), the catalog ``lakehouse``. The server tooling (:mod:`lakehouse.trino_server`)
starts the server with the same values."""

from __future__ import annotations

import os
from collections.abc import Mapping

from lakehouse.engines.trino.errors import TrinoConfigError

HOST = "127.0.0.1"
CATALOG_NAME = "lakehouse"
DEFAULT_PORT = 8080
PORT_VAR = "LAKEHOUSE_TRINO_PORT"


def check_port(port: int) -> int:
    if not 1 <= port <= 65535:
        raise TrinoConfigError(f"port {port} is not a TCP port; set --port or {PORT_VAR}")
    return port


def default_port(env: Mapping[str, str] | None = None) -> int:
    """``LAKEHOUSE_TRINO_PORT``, else 8080."""
    env = os.environ if env is None else env
    if not env.get(PORT_VAR):
        return DEFAULT_PORT
    try:
        return check_port(int(env[PORT_VAR]))
    except ValueError as exc:
        raise TrinoConfigError(f"invalid LAKEHOUSE_TRINO_* setting: {exc}") from exc
