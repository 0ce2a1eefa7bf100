"""A throwaway PostgreSQL cluster on 127.0.0.1, from the Debian server binaries."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.components import free_port


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str
    data_dir: Path
    bin_dir: Path

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg2://{self.user}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        self._run(
            [
                str(self.bin_dir / "createdb"),
                "-h",
                self.host,
                "-p",
                str(self.port),
                "-U",
                self.user,
                name,
            ]
        )
        return self.url(name)

    def _run(self, cmd: list[str]) -> None:
        subprocess.run(_as_owner(cmd), check=True, capture_output=True, text=True)

    def stop(self, mode: str = "fast") -> None:
        subprocess.run(
            _as_owner([str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", mode, "stop"]),
            check=False,
            capture_output=True,
        )

    def start(self) -> None:
        _pg_ctl_start(self.bin_dir, self.data_dir, self.port)


class PostgresUnavailable(RuntimeError):
    pass


def find_bin_dir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    if not candidates:
        found = shutil.which("initdb")
        if not found:
            raise PostgresUnavailable(
                "no initdb found; install PostgreSQL (`apt-get install postgresql`, which ./dev test does)"
            )
        return Path(os.path.realpath(found)).parent
    return Path(candidates[0]).parent


def _owner() -> str | None:
    """initdb refuses to run as root: run the cluster as the `postgres` user then."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError as exc:
        raise PostgresUnavailable(
            "running as root and there is no `postgres` user to own the cluster"
        ) from exc
    return "postgres"


def _as_owner(cmd: list[str]) -> list[str]:
    owner = _owner()
    return ["runuser", "-u", owner, "--", *cmd] if owner else cmd


def _pg_ctl_start(bin_dir: Path, data_dir: Path, port: int) -> None:
    log = data_dir / "server.log"
    proc = subprocess.run(
        _as_owner(
            [
                str(bin_dir / "pg_ctl"),
                "-D",
                str(data_dir),
                "-l",
                str(log),
                "-w",
                "-t",
                "60",
                "-o",
                f"-h 127.0.0.1 -p {port} -k {data_dir} -c fsync=off -c max_connections=200",
                "start",
            ]
        ),
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        raise PostgresUnavailable(f"pg_ctl start failed: {proc.stderr.strip()}\n{tail}")


@contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    bin_dir = find_bin_dir()
    owner = _owner()
    root = Path(tempfile.mkdtemp(prefix="lakehouse-pg-"))
    data_dir = root / "data"
    data_dir.mkdir()
    if owner:
        uid, gid = pwd.getpwnam(owner).pw_uid, pwd.getpwnam(owner).pw_gid
        os.chown(root, uid, gid)
        os.chown(data_dir, uid, gid)
    user = owner or pwd.getpwuid(os.geteuid()).pw_name
    init = subprocess.run(
        _as_owner(
            [str(bin_dir / "initdb"), "-D", str(data_dir), "-U", user, "--auth=trust", "-E", "UTF8"]
        ),
        capture_output=True,
        text=True,
    )
    if init.returncode != 0:
        raise PostgresUnavailable(f"initdb failed: {init.stderr.strip()}")
    port = free_port()
    _pg_ctl_start(bin_dir, data_dir, port)
    server = PostgresServer("127.0.0.1", port, user, data_dir, bin_dir)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ready = subprocess.run(
            [str(bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)], capture_output=True
        )
        if ready.returncode == 0:
            break
        time.sleep(0.2)
    try:
        yield server
    finally:
        server.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)
