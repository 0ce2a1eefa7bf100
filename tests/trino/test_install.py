"""The install flow against a stand-in ``mvn`` that serves small artifacts from a folder:
unpacking, checksum checks, the cache marker, progress and Maven failures. (The real
download is exercised by ``scripts/setup-trino.sh`` and the server tests.)"""

from __future__ import annotations

import hashlib
import io
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from lakehouse.trino_server import TrinoInstallError, find_installation, install, trino_home
from lakehouse.trino_server.install import ARTIFACTS, ICEBERG, SERVER, SQLITE_JDBC

FAKE_MVN = r'''#!{python}
"""Stand-in for mvn dependency:copy: serves artifacts from $FAKE_REMOTE."""
import hashlib, os, shutil, sys
from pathlib import Path
args = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("-D") and "=" in a)
group, artifact, version, packaging = args["artifact"].split(":")
name = f"{{artifact}}-{{version}}.{{packaging}}"
if os.environ.get("FAKE_MVN_FAIL"):
    print("[INFO] Downloading from central: https://repo.invalid/" + name)
    print("[ERROR] Failed to execute goal: Could not transfer artifact " + args["artifact"])
    sys.exit(1)
source = Path(os.environ["FAKE_REMOTE"]) / name
local = Path(args["maven.repo.local"]).joinpath(*group.split("."), artifact, version, name)
local.parent.mkdir(parents=True, exist_ok=True)
print(f"Downloading from central: https://repo.invalid/{{name}}")
print("Progress (1): 1/2 kB\rProgress (1): 2/2 kB\r")
shutil.copyfile(source, local)
digest = hashlib.sha1(source.read_bytes()).hexdigest()
counter = Path(os.environ["FAKE_REMOTE"]) / ("calls-" + name)
calls = int(counter.read_text()) + 1 if counter.exists() else 1
counter.write_text(str(calls))
bad = os.environ.get("FAKE_MVN_BAD_SHA1", "")
if bad.startswith(artifact + ":") and calls <= int(bad.split(":")[1]):
    digest = "0" * 40
Path(str(local) + ".sha1").write_text(digest + "  " + name + "\n")
Path(args["outputDirectory"]).mkdir(parents=True, exist_ok=True)
shutil.copyfile(local, Path(args["outputDirectory"]) / name)
print("[INFO] BUILD SUCCESS")
'''


def _tar_gz(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buf.getvalue()


class Recorder:
    def __init__(self) -> None:
        self.stages: list[str] = []
        self.transfers: list[tuple[str, int, int | None]] = []

    def stage(self, message: str) -> None:
        self.stages.append(message)

    def transfer(self, name: str, done_bytes: int, total_bytes: int | None) -> None:
        self.transfers.append((name, done_bytes, total_bytes))

    def waiting(self, message: str, elapsed_seconds: float) -> None:
        pass


@pytest.fixture
def fake_maven(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    remote = tmp_path / "remote"
    remote.mkdir()
    (remote / SERVER.filename).write_bytes(
        _tar_gz(
            {
                "trino-server-core-476/lib/trino-main.jar": b"main",
                "trino-server-core-476/plugin/geospatial/geo.jar": b"geo",
                "trino-server-core-476/bin/launcher": b"#!/bin/sh\n",
            }
        )
    )
    (remote / ICEBERG.filename).write_bytes(
        _zip(
            {
                "trino-iceberg-476/io.trino_trino-iceberg-476.jar": b"iceberg",
                "trino-iceberg-476/org.postgresql_postgresql-42.7.6.jar": b"pg",
            }
        )
    )
    (remote / SQLITE_JDBC.filename).write_bytes(b"sqlite driver")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    mvn = bin_dir / "mvn"
    mvn.write_text(FAKE_MVN.format(python=sys.executable))
    mvn.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setenv("FAKE_REMOTE", str(remote))
    monkeypatch.setenv("LAKEHOUSE_TRINO_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("LAKEHOUSE_TRINO_MAVEN_REPO", str(tmp_path / "m2"))
    return remote


def test_install_unpacks_verifies_and_is_reused(fake_maven: Path, tmp_path: Path) -> None:
    recorder = Recorder()
    first = install(reporter=recorder)
    assert not first.already_installed
    server = tmp_path / "cache" / "server"
    assert first.installation.server_dir == server
    assert (server / "lib" / "trino-main.jar").read_bytes() == b"main"
    iceberg = server / "plugin" / "iceberg"
    assert sorted(p.name for p in iceberg.iterdir()) == [
        "io.trino_trino-iceberg-476.jar",
        "org.postgresql_postgresql-42.7.6.jar",
        SQLITE_JDBC.filename,
    ]
    assert first.installation.artifacts == {
        a.coordinates: hashlib.sha1((fake_maven / a.filename).read_bytes()).hexdigest()
        for a in ARTIFACTS
    }
    assert first.artifact_bytes == sum((fake_maven / a.filename).stat().st_size for a in ARTIFACTS)
    assert (ICEBERG.filename, 2000, 2000) in recorder.transfers
    assert any("fetching io.trino:trino-iceberg:476:zip" in s for s in recorder.stages)
    assert not list((tmp_path / "cache").glob(".staging-*"))

    again = install()
    assert again.already_installed and again.installation.artifacts == first.installation.artifacts
    assert (fake_maven / f"calls-{SERVER.filename}").read_text() == "1"
    assert find_installation() == again.installation


def test_a_bad_checksum_is_fetched_again_then_fails(
    fake_maven: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_MVN_BAD_SHA1", "trino-iceberg:1")
    recorder = Recorder()
    assert not install(reporter=recorder).already_installed
    assert (fake_maven / f"calls-{ICEBERG.filename}").read_text() == "2"
    assert any("downloading it again" in s for s in recorder.stages)

    monkeypatch.setenv("FAKE_MVN_BAD_SHA1", "sqlite-jdbc:99")
    with pytest.raises(TrinoInstallError, match=r"\.sha1 file says 0000.*after a fresh download"):
        install(force=True)


def test_maven_failure_shows_its_last_lines(
    fake_maven: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_MVN_FAIL", "1")
    with pytest.raises(TrinoInstallError) as info:
        install()
    message = str(info.value)
    assert "Could not transfer artifact io.trino:trino-server-core:476:tar.gz" in message
    assert "exit code 1" in message
    assert find_installation() is None


def test_missing_maven_says_how_to_get_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("LAKEHOUSE_TRINO_HOME", str(tmp_path / "cache"))
    with pytest.raises(TrinoInstallError, match="apt-get install maven"):
        install()


def test_cache_location(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert trino_home({"LAKEHOUSE_TRINO_HOME": str(tmp_path / "t")}) == tmp_path / "t"
    assert trino_home({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "lakehouse" / "trino" / "476"
    monkeypatch.setenv("HOME", str(tmp_path / "h"))
    assert trino_home({}) == tmp_path / "h" / ".cache" / "lakehouse" / "trino" / "476"


def test_an_unfinished_install_is_not_used(tmp_path: Path) -> None:
    home = tmp_path / "cache"
    (home / "server" / "lib").mkdir(parents=True)
    assert find_installation(home) is None  # no marker
    (home / "install.json").write_text('{"version": "476", "artifacts": {}}')
    assert find_installation(home) is None  # marker of another artifact set
