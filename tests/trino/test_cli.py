"""``lakehouse trino ...`` through click's runner, without a running Trino: exit codes,
JSON, and the clear errors (no Java, not installed, port in use, died at start)."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from lakehouse.cli.main import cli
from lakehouse.settings import Settings
from lakehouse.trino_server import TrinoError, find_java, instance_paths, status
from tests.support.components import free_port, unavailable
from tests.trino.test_java import fake_jdk


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, ["trino", *args], env=env, catch_exceptions=False)


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def fake_install(tmp_path: Path) -> Path:
    """A cache that looks installed but holds no Trino classes."""
    home = tmp_path / "trino-cache"
    (home / "server" / "lib").mkdir(parents=True)
    (home / "server" / "plugin" / "iceberg").mkdir(parents=True)
    (home / "install.json").write_text(
        json.dumps(
            {
                "version": "476",
                "artifacts": {
                    "io.trino:trino-server-core:476:tar.gz": "x",
                    "io.trino:trino-iceberg:476:zip": "x",
                    "org.xerial:sqlite-jdbc:3.54.1.0:jar": "x",
                },
                "installed_at": "2026-01-01T00:00:00+00:00",
            }
        )
    )
    return home


@pytest.fixture
def listening(port: int) -> Iterator[socket.socket]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", port))
    sock.listen()
    yield sock
    sock.close()


def test_status_when_stopped_exits_1_with_json(home: Path, port: int) -> None:
    out = run("status", "--port", str(port), "--json")
    assert out.exit_code == 1
    data = json.loads(out.stdout)
    assert data["running"] is False and data["port"] == port and data["pid"] is None
    assert data["server_log"] == str(home.resolve() / "trino" / str(port) / "log" / "server.log")
    text = run("status", "--port", str(port))
    assert text.exit_code == 1 and f"not running on port {port}" in text.stdout


def test_port_comes_from_the_environment(home: Path, port: int) -> None:
    out = run("status", "--json", env={"LAKEHOUSE_TRINO_PORT": str(port)})
    assert json.loads(out.stdout)["port"] == port


def test_stop_when_stopped_is_fine(home: Path, port: int) -> None:
    out = run("stop", "--port", str(port), "--json")
    assert out.exit_code == 0
    assert json.loads(out.stdout) == {
        "was_running": False,
        "port": port,
        "pid": None,
        "forced": False,
        "seconds": 0.0,
    }


def test_a_stale_pid_file_is_not_trusted(home: Path, port: int) -> None:
    paths = instance_paths(Settings.from_env(), port)
    paths.root.mkdir(parents=True)
    paths.pid_file.write_text(f"{os.getpid()}\n")  # this test process: alive, but not Trino
    assert status(Settings.from_env(), port=port).running is False
    assert not paths.pid_file.exists()
    paths.pid_file.write_text(f"{os.getpid()}\n")
    assert run("stop", "--port", str(port)).exit_code == 0  # and we are still here
    assert not paths.pid_file.exists()


def test_sql_without_a_server_is_a_clear_error(home: Path, port: int) -> None:
    out = run("sql", "--port", str(port), "--json", "SELECT 1")
    assert out.exit_code == 1
    error = json.loads(out.stderr.strip().splitlines()[-1])
    assert error["type"] == "TrinoNotRunningError"
    assert f"lakehouse trino start --port {port}" in error["message"]


def test_start_without_a_suitable_java(
    home: Path, port: int, tmp_path: Path, fake_install: Path
) -> None:
    old = fake_jdk(tmp_path / "jdks", "jdk17", "17.0.15")
    env = {"LAKEHOUSE_TRINO_JAVA_HOME": str(old), "LAKEHOUSE_TRINO_HOME": str(fake_install)}
    out = run("start", "--port", str(port), "--no-install", env=env)
    assert out.exit_code == 1
    assert (
        "Trino needs Java 24 or newer" in out.stderr and "LAKEHOUSE_TRINO_JAVA_HOME" in out.stderr
    )


def test_start_when_not_installed_and_told_not_to_install(
    home: Path, port: int, tmp_path: Path
) -> None:
    out = run(
        "start",
        "--port",
        str(port),
        "--no-install",
        "--json",
        env={"LAKEHOUSE_TRINO_HOME": str(tmp_path / "empty")},
    )
    assert out.exit_code == 1
    error = json.loads(out.stderr.strip().splitlines()[-1])
    assert (
        error["type"] == "TrinoNotInstalledError" and "lakehouse trino install" in error["message"]
    )


def test_start_on_a_port_in_use(
    home: Path, port: int, tmp_path: Path, fake_install: Path, listening: socket.socket
) -> None:
    java = fake_jdk(tmp_path / "jdks", "jdk25", "25.0.3")
    env = {"LAKEHOUSE_TRINO_JAVA_HOME": str(java), "LAKEHOUSE_TRINO_HOME": str(fake_install)}
    out = run("start", "--port", str(port), env=env)
    assert out.exit_code == 1
    assert f"port {port} on 127.0.0.1 is already in use" in out.stderr
    assert not instance_paths(Settings.from_env(), port).pid_file.exists()


def test_start_with_an_unmappable_catalog_is_a_config_error(
    home: Path, port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYICEBERG_CATALOG__RESTY__TYPE", "rest")  # (glue and sql map)
    monkeypatch.setenv("PYICEBERG_CATALOG__RESTY__URI", "http://127.0.0.1:8181")
    out = run("start", "--port", str(port), "--catalog", "resty", "--no-install")
    assert out.exit_code == 2
    assert "type 'rest'" in out.stderr


def test_a_server_that_dies_at_start_shows_its_log(
    home: Path, port: int, fake_install: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    try:
        java = find_java()  # a real JVM, started on a server folder without Trino's classes
    except TrinoError as exc:
        unavailable("a Java 24+", str(exc))  # skipped locally, a failure in CI
    monkeypatch.setenv("LAKEHOUSE_TRINO_JAVA_HOME", str(java.home))
    monkeypatch.setenv("LAKEHOUSE_TRINO_HOME", str(fake_install))
    out = run("start", "--port", str(port), "--no-install")
    assert out.exit_code == 1
    assert "Trino exited with code 1 while starting" in out.stderr
    assert "io.trino.server.TrinoServer" in out.stderr  # the JVM's own words, from launcher.log
    paths = instance_paths(Settings.from_env(), port)
    assert "launcher.log" in out.stderr and paths.launcher_log.exists()
    assert not paths.pid_file.exists()
    assert "node.bind-ip=127.0.0.1" in paths.config_file.read_text()


@pytest.mark.parametrize(
    ("command", "needle"),
    [
        ("install", "LAKEHOUSE_TRINO_HOME"),
        ("start", "LAKEHOUSE_TRINO_JAVA_HOME"),
        ("stop", "trino.pid"),
        ("status", "Exit code 0 when it is running"),
        ("sql", "FOR VERSION AS OF"),
    ],
)
def test_help_explains(command: str, needle: str) -> None:
    out = run(command, "--help")
    assert out.exit_code == 0 and needle in out.stdout
