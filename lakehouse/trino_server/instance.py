"""Where a Trino server's files go, and the options it runs with.

Each lakehouse home has its own server state, one folder per HTTP port::

    $LAKEHOUSE_HOME/trino/<port>/
        etc/config.properties  etc/jvm.config  etc/log.properties
        etc/catalog/lakehouse.properties   (one file per Trino catalog)
        data/                               (the server's working and data folder)
        log/server.log  log/launcher.log  log/http-request.log
        trino.pid  instance.json            (written by ``start``, removed by ``stop``)

The server binaries are shared by every instance, in the cache (see ``install``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from lakehouse.durations import format_duration, parse_duration
from lakehouse.engines.trino.endpoint import DEFAULT_PORT, PORT_VAR, check_port
from lakehouse.engines.trino.errors import TrinoConfigError
from lakehouse.errors import UsageError
from lakehouse.settings import Settings

DEFAULT_HEAP = "6G"
HEAP_VAR = "LAKEHOUSE_TRINO_HEAP"
MIN_RETENTION_VAR = "LAKEHOUSE_TRINO_MIN_RETENTION"
ORPHAN_MIN_RETENTION_VAR = "LAKEHOUSE_TRINO_ORPHAN_MIN_RETENTION"
STARTUP_TIMEOUT_VAR = "LAKEHOUSE_TRINO_STARTUP_TIMEOUT"

_HEAP = re.compile(r"^(\d+)([mMgG])$")
_CATALOG_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


@dataclass(frozen=True)
class ServerOptions:
    """How a server runs. ``min_retention`` is the floor of the ``expire_snapshots``
    procedure (0s: the lakehouse's own maintenance rules and the procedure's 7-day default
    are the guard), ``orphan_min_retention`` that of ``remove_orphan_files`` (1d: in-flight
    writes look like orphans); ``extra_catalogs`` are pyiceberg catalog
    names served beside ``lakehouse`` under their own names."""

    port: int = DEFAULT_PORT
    heap: str = DEFAULT_HEAP
    min_retention: timedelta = timedelta(0)
    orphan_min_retention: timedelta = timedelta(days=1)
    extra_catalogs: tuple[str, ...] = ()
    startup_timeout: timedelta = timedelta(minutes=3)

    def __post_init__(self) -> None:
        check_port(self.port)
        if not _HEAP.match(self.heap):
            raise TrinoConfigError(f"heap {self.heap!r} is not like 6G or 4096M; set {HEAP_VAR}")
        if self.heap_bytes < 1024**3:
            raise TrinoConfigError(
                f"heap {self.heap} is too small for Trino; give it 1G or more ({HEAP_VAR})"
            )
        for name in self.extra_catalogs:
            if not _CATALOG_NAME.match(name) or name == "lakehouse":
                raise TrinoConfigError(
                    f"extra catalog {name!r} cannot be a Trino catalog name: use lowercase letters, "
                    "digits and '_' (and not 'lakehouse', which is the settings' catalog)"
                )

    @property
    def heap_bytes(self) -> int:
        match = _HEAP.match(self.heap)
        assert match is not None
        return int(match.group(1)) * (1024**3 if match.group(2).lower() == "g" else 1024**2)

    @property
    def query_max_memory_per_node(self) -> str:
        """2GB with the default 6G heap; about a third of a smaller heap (Trino keeps 30% headroom)."""
        megabytes = min(2048, self.heap_bytes * 35 // 100 // 1024**2)
        return "2GB" if megabytes == 2048 else f"{megabytes}MB"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> ServerOptions:
        """Options from ``LAKEHOUSE_TRINO_*`` variables, then explicit (non-None) overrides."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        try:
            if env.get(PORT_VAR):
                values["port"] = int(env[PORT_VAR])
            if env.get(HEAP_VAR):
                values["heap"] = env[HEAP_VAR].strip()
            if env.get(MIN_RETENTION_VAR):
                values["min_retention"] = parse_duration(env[MIN_RETENTION_VAR])
            if env.get(ORPHAN_MIN_RETENTION_VAR):
                values["orphan_min_retention"] = parse_duration(env[ORPHAN_MIN_RETENTION_VAR])
            if env.get(STARTUP_TIMEOUT_VAR):
                values["startup_timeout"] = parse_duration(env[STARTUP_TIMEOUT_VAR])
        except (ValueError, UsageError) as exc:
            raise TrinoConfigError(f"invalid LAKEHOUSE_TRINO_* setting: {exc}") from exc
        for key, value in overrides.items():
            if value is not None:
                values[key] = tuple(value) if key == "extra_catalogs" else value
        return replace(cls(), **values)

    def to_dict(self) -> dict[str, object]:
        return {
            "port": self.port,
            "heap": self.heap,
            "query_max_memory_per_node": self.query_max_memory_per_node,
            "min_retention": format_duration(self.min_retention),
            "orphan_min_retention": format_duration(self.orphan_min_retention),
            "extra_catalogs": list(self.extra_catalogs),
            "startup_timeout": format_duration(self.startup_timeout),
        }


@dataclass(frozen=True)
class InstancePaths:
    """The files of the server for one lakehouse home and port."""

    root: Path

    @property
    def etc(self) -> Path:
        return self.root / "etc"

    @property
    def catalog_dir(self) -> Path:
        return self.etc / "catalog"

    @property
    def config_file(self) -> Path:
        return self.etc / "config.properties"

    @property
    def jvm_config(self) -> Path:
        return self.etc / "jvm.config"

    @property
    def log_properties(self) -> Path:
        return self.etc / "log.properties"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log_dir(self) -> Path:
        return self.root / "log"

    @property
    def server_log(self) -> Path:
        return self.log_dir / "server.log"

    @property
    def launcher_log(self) -> Path:
        return self.log_dir / "launcher.log"

    @property
    def http_log(self) -> Path:
        return self.log_dir / "http-request.log"

    @property
    def pid_file(self) -> Path:
        return self.root / "trino.pid"

    @property
    def state_file(self) -> Path:
        return self.root / "instance.json"

    def make_dirs(self) -> None:
        for folder in (self.catalog_dir, self.data, self.log_dir):
            folder.mkdir(parents=True, exist_ok=True)


def instance_paths(settings: Settings, port: int) -> InstancePaths:
    """``$LAKEHOUSE_HOME/trino/<port>``, absolute."""
    return InstancePaths(settings.home.expanduser().resolve() / "trino" / str(port))
