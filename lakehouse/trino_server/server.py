"""Run a single-node Trino server in the background: start, stop, status.

``start`` launches the JVM directly (no launcher script) in its own session, so it
outlives the process that started it, records ``trino.pid`` and ``instance.json`` in the
instance folder (see :mod:`lakehouse.trino_server.instance`) and waits until ``GET /v1/info``
says ``"starting": false``. Each start gets a fresh ``node.id``; readiness is only
believed when ``/v1/status`` answers with that id, so another server on the port is never
mistaken for ours. ``stop`` signals only a process whose command line names this
instance's config file.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lakehouse.engines.trino.endpoint import HOST
from lakehouse.engines.trino.errors import PortInUseError, TrinoStartError
from lakehouse.settings import Settings
from lakehouse.trino_server.config import all_catalogs, write_config
from lakehouse.trino_server.install import Installation, require_installation
from lakehouse.trino_server.instance import InstancePaths, ServerOptions, instance_paths
from lakehouse.trino_server.java import JavaRuntime, find_java
from lakehouse.trino_server.process import (
    LogMark,
    cmdline,
    failure_logs,
    forget,
    get_json,
    log_mark,
    port_free,
    spawn,
    terminate,
)
from lakehouse.trino_server.progress import NullReporter, Reporter

log = logging.getLogger(__name__)

MAIN_CLASS = "io.trino.server.TrinoServer"


@dataclass(frozen=True)
class TrinoStatus:
    """The state of the server of one lakehouse home and port."""

    running: bool
    port: int
    url: str
    pid: int | None
    responding: bool
    version: str | None
    starting: bool | None
    uptime: str | None
    node_id: str | None
    java_home: str | None
    catalogs: tuple[str, ...]
    instance_dir: Path
    server_log: Path

    def to_dict(self) -> dict[str, Any]:
        return {
            "running": self.running,
            "port": self.port,
            "url": self.url,
            "pid": self.pid,
            "responding": self.responding,
            "version": self.version,
            "starting": self.starting,
            "uptime": self.uptime,
            "node_id": self.node_id,
            "java_home": self.java_home,
            "catalogs": list(self.catalogs),
            "instance_dir": str(self.instance_dir),
            "server_log": str(self.server_log),
        }


@dataclass(frozen=True)
class StartResult:
    status: TrinoStatus
    already_running: bool
    startup_seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "already_running": self.already_running,
            "startup_seconds": round(self.startup_seconds, 2),
            **self.status.to_dict(),
        }


@dataclass(frozen=True)
class StopResult:
    was_running: bool
    port: int
    pid: int | None
    forced: bool
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "was_running": self.was_running,
            "port": self.port,
            "pid": self.pid,
            "forced": self.forced,
            "seconds": round(self.seconds, 2),
        }


def is_our_process(pid: int, paths: InstancePaths) -> bool:
    """Is ``pid`` a live Trino JVM started for this instance folder?"""
    args = cmdline(pid)
    return MAIN_CLASS in args and f"-Dconfig={paths.config_file}" in args


def _read_pid(paths: InstancePaths) -> int | None:
    try:
        return int(paths.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def _read_state(paths: InstancePaths) -> dict[str, Any]:
    try:
        data = json.loads(paths.state_file.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def running_pid(paths: InstancePaths) -> int | None:
    """The pid of this instance's server, or None (a stale pid file is removed)."""
    pid = _read_pid(paths)
    if pid is None:
        return None
    if is_our_process(pid, paths):
        return pid
    log.info(
        "removing stale pid file %s (pid %d is not this instance's Trino)", paths.pid_file, pid
    )
    _clear_run_files(paths)
    return None


def _clear_run_files(paths: InstancePaths) -> None:
    paths.pid_file.unlink(missing_ok=True)
    paths.state_file.unlink(missing_ok=True)


def status(settings: Settings, *, port: int) -> TrinoStatus:
    paths = instance_paths(settings, port)
    pid = running_pid(paths)
    state = _read_state(paths) if pid else {}
    info = get_json(port, "/v1/info") if pid else None
    return TrinoStatus(
        running=pid is not None,
        port=port,
        url=f"http://{HOST}:{port}",
        pid=pid,
        responding=info is not None,
        version=(info or {}).get("nodeVersion", {}).get("version"),
        starting=(info or {}).get("starting"),
        uptime=(info or {}).get("uptime"),
        node_id=state.get("node_id"),
        java_home=state.get("java_home"),
        catalogs=tuple(state.get("catalogs", ())),
        instance_dir=paths.root,
        server_log=paths.server_log,
    )


def server_command(
    paths: InstancePaths, installation: Installation, java: JavaRuntime
) -> list[str]:
    jvm = [
        line.strip()
        for line in paths.jvm_config.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    return [
        str(java.java),
        *jvm,
        "-cp",
        f"{installation.lib_dir}/*",
        f"-Dconfig={paths.config_file}",
        f"-Dlog.levels-file={paths.log_properties}",
        f"-Dlog.output-file={paths.server_log}",
        "-Dlog.enable-console=false",
        MAIN_CLASS,
    ]


def start(
    settings: Settings,
    options: ServerOptions | None = None,
    *,
    reporter: Reporter | None = None,
    installation: Installation | None = None,
    java: JavaRuntime | None = None,
) -> StartResult:
    """Start this home's server on ``options.port`` and wait until it is ready.
    Returns at once (``already_running``) when it is already up."""
    options = options or ServerOptions.from_env()
    reporter = reporter or NullReporter()
    began = time.monotonic()
    paths = instance_paths(settings, options.port)
    if running_pid(paths) is not None:
        return StartResult(status(settings, port=options.port), True, 0.0)
    catalogs = all_catalogs(settings, options)  # an unmappable catalog fails first, cheaply
    installation = installation or require_installation()
    java = java or find_java()
    if not port_free(options.port):
        raise PortInUseError(
            f"port {options.port} on {HOST} is already in use by another process; choose another "
            "with --port or LAKEHOUSE_TRINO_PORT (another lakehouse home's Trino? see "
            f"`lakehouse trino status --port {options.port} --home ...`)"
        )
    node_id = f"lakehouse-{options.port}-{secrets.token_hex(4)}"
    write_config(
        paths,
        catalogs=catalogs,
        settings=settings,
        installation=installation,
        java=java,
        options=options,
        node_id=node_id,
    )
    marks = (log_mark(paths.server_log), log_mark(paths.launcher_log))
    cmd = server_command(paths, installation, java)
    log.info("starting Trino: %s", " ".join(cmd))
    reporter.stage(
        f"starting Trino {installation.version} on {HOST}:{options.port} with Java {java.version}"
    )
    env = {**os.environ, "JAVA_HOME": str(java.home)}
    try:
        proc = spawn(cmd, cwd=paths.data, output=paths.launcher_log, env=env)
    except OSError as exc:
        raise TrinoStartError(f"cannot run {java.java}: {exc}") from exc
    paths.pid_file.write_text(f"{proc.pid}\n")
    state = {
        "pid": proc.pid,
        "port": options.port,
        "node_id": node_id,
        "java_home": str(java.home),
        "java_version": java.version,
        "trino_home": str(installation.home),
        "catalogs": sorted(catalogs),
        "options": options.to_dict(),
        "started_at": datetime.now(UTC).isoformat(),
    }
    paths.state_file.write_text(json.dumps(state, indent=2) + "\n")
    _wait_ready(proc, paths, options, node_id, reporter, began, marks)
    return StartResult(status(settings, port=options.port), False, time.monotonic() - began)


def _wait_ready(
    proc: subprocess.Popen[bytes],
    paths: InstancePaths,
    options: ServerOptions,
    node_id: str,
    reporter: Reporter,
    began: float,
    marks: tuple[LogMark, LogMark],
) -> None:
    deadline = began + options.startup_timeout.total_seconds()
    message = f"waiting for Trino on {HOST}:{options.port} (log: {paths.server_log})"
    while True:
        code = proc.poll()
        if code is not None:
            forget(proc.pid)
            _clear_run_files(paths)
            raise TrinoStartError(
                f"Trino exited with code {code} while starting.\n" + failure_logs(paths, *marks)
            )
        node = get_json(options.port, "/v1/status")
        if node is not None and node.get("nodeId") == node_id:
            info = get_json(options.port, "/v1/info")
            if info is not None and info.get("starting") is False and _runs_queries(options.port):
                reporter.stage(f"Trino is ready after {time.monotonic() - began:.1f} s")
                return
        elapsed = time.monotonic() - began
        if time.monotonic() > deadline:
            terminate(proc.pid, grace=10.0)
            _clear_run_files(paths)
            raise TrinoStartError(
                f"Trino did not become ready within {elapsed:.0f} s and was stopped "
                f"(raise LAKEHOUSE_TRINO_STARTUP_TIMEOUT on a slow machine).\n"
                + failure_logs(paths, *marks)
            )
        reporter.waiting(message, elapsed)
        time.sleep(0.5)


def _runs_queries(port: int) -> bool:
    """True once a query runs: for a moment after ``"starting": false`` the node has not
    announced itself yet and queries fail with NO_NODES_AVAILABLE."""
    import trino

    conn = trino.dbapi.connect(  # type: ignore[no-untyped-call]
        host=HOST,
        port=port,
        user="lakehouse",
        http_scheme="http",
        max_attempts=1,
        request_timeout=10,
    )
    try:
        cursor = conn.cursor()
        cursor.execute("SELECT count(*) FROM system.runtime.nodes WHERE state = 'active'")
        return bool(cursor.fetchall()[0][0])
    except trino.exceptions.DatabaseError as exc:
        log.debug("not ready for queries yet: %s", exc)
        return False
    finally:
        conn.close()


def stop(settings: Settings, *, port: int, grace: float = 30.0) -> StopResult:
    """Stop this home's server on ``port``, and nothing else."""
    began = time.monotonic()
    paths = instance_paths(settings, port)
    pid = running_pid(paths)
    if pid is None:
        return StopResult(False, port, None, False, time.monotonic() - began)
    log.info("stopping Trino pid %d (%s)", pid, paths.root)
    forced = terminate(pid, grace=grace)
    _clear_run_files(paths)
    return StopResult(True, port, pid, forced, time.monotonic() - began)
