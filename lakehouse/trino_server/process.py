"""Process and file plumbing for the server: ports, HTTP probes, pids, signals, logs."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from lakehouse.engines.trino.endpoint import HOST
from lakehouse.trino_server.instance import InstancePaths

log = logging.getLogger(__name__)

# Servers started by this Python process, so that stopping one also reaps it (no zombie).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def spawn(
    cmd: list[str], *, cwd: Path, output: Path, env: dict[str, str]
) -> subprocess.Popen[bytes]:
    """Start ``cmd`` detached (own session, stdin from /dev/null, output appended to
    ``output``) so that it outlives the calling process."""
    with open(output, "ab") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )
    _CHILDREN[proc.pid] = proc
    return proc


def forget(pid: int) -> None:
    _CHILDREN.pop(pid, None)


def port_free(port: int, host: str = HOST) -> bool:
    """True when nothing listens on ``host:port`` (a test bind, as the server would do)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def get_json(port: int, path: str, *, timeout: float = 2.0) -> dict[str, Any] | None:
    """``GET http://127.0.0.1:<port><path>`` as JSON, or None when nothing sensible answers."""
    request = urllib.request.Request(
        f"http://{HOST}:{port}{path}", headers={"X-Trino-User": "lakehouse"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            data = json.loads(response.read())
    except (OSError, ValueError, urllib.error.URLError):
        return None
    return data if isinstance(data, dict) else None


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        proc = subprocess.run(
            ["ps", "-o", "command=", "-p", str(pid)], capture_output=True, text=True, check=False
        )
        return proc.stdout.split()
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


LogMark = tuple[str, int]


def log_mark(path: Path) -> LogMark:
    """Where a log ends now. The server log is a symlink that airlift may point at a new
    file at the next start: the mark remembers which file the offset belongs to."""
    real = os.path.realpath(path)
    try:
        return real, os.path.getsize(real)
    except OSError:
        return real, 0


def offset_since(path: Path, mark: LogMark) -> int:
    return mark[1] if os.path.realpath(path) == mark[0] else 0


def failure_logs(paths: InstancePaths, server_mark: LogMark, launcher_mark: LogMark) -> str:
    """What to show when the server failed to start: its first error, the last 30 lines of
    server.log and the last lines of the JVM's own output, all written since the marks."""
    log_offset = offset_since(paths.server_log, server_mark)
    launcher_offset = offset_since(paths.launcher_log, launcher_mark)
    parts = []
    server = tail_lines(paths.server_log, 30, offset=log_offset)
    errors = first_error(paths.server_log, offset=log_offset)
    if errors and errors not in server:
        parts.append(f"First error in {paths.server_log}:\n{errors}")
    if server:
        parts.append(f"Last lines of {paths.server_log}:\n{server}")
    launcher = tail_lines(paths.launcher_log, 15, offset=launcher_offset)
    if launcher:
        parts.append(f"Last lines of {paths.launcher_log} (JVM output):\n{launcher}")
    return "\n".join(parts) or f"Nothing was logged; see {paths.log_dir}"


def first_error(path: Path, *, offset: int = 0, context: int = 6) -> str:
    """The first ``ERROR`` log record after ``offset`` with a few lines of its message."""
    lines = read_log(path, offset=offset, max_bytes=16 * 1024 * 1024, from_end=False).splitlines()
    for index, line in enumerate(lines):
        if "\tERROR\t" in line:
            return "\n".join(lines[index : index + context])
    return ""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    child = _CHILDREN.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"  # a zombie is dead


def terminate(pid: int, *, grace: float) -> bool:
    """SIGTERM, then SIGKILL after ``grace`` seconds. True when SIGKILL was needed."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not alive(pid):
            _CHILDREN.pop(pid, None)
            return False
        time.sleep(0.1)
    log.warning("Trino (pid %d) did not stop within %.0f s; killing it", pid, grace)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    child = _CHILDREN.pop(pid, None)
    if child is not None:
        child.wait(timeout=10)
    else:
        deadline = time.monotonic() + 10
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
    return True


def read_log(
    path: Path, *, offset: int = 0, max_bytes: int = 256 * 1024, from_end: bool = True
) -> str:
    """Text of ``path`` after byte ``offset``, at most ``max_bytes`` of it (the last ones
    when ``from_end``); empty when the file cannot be read."""
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            begin = max(offset, size - max_bytes) if from_end else min(offset, size)
            handle.seek(begin)
            return handle.read(max_bytes).decode("utf-8", errors="replace")
    except OSError:
        return ""


def tail_lines(path: Path, count: int = 30, *, offset: int = 0) -> str:
    """The last ``count`` non-blank lines of ``path`` written after byte ``offset``."""
    lines = [line for line in read_log(path, offset=offset).splitlines() if line.strip()]
    return "\n".join(lines[-count:])
