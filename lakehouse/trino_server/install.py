"""Install the Trino server into a cache outside the repository, once.

Trino 476 is the last release whose server tarball and plugin zips are on Maven Central,
so it is fetched by Maven coordinates with the Maven client (``mvn``), never from a
hard-coded host:

* ``io.trino:trino-server-core:476:tar.gz``: the server without connectors;
* ``io.trino:trino-iceberg:476:zip``: the Iceberg connector, unpacked into ``plugin/iceberg``;
* ``org.xerial:sqlite-jdbc``: the SQLite JDBC driver, dropped into ``plugin/iceberg`` so the
  Iceberg JDBC catalog can read the embedded SQLite catalog (PostgreSQL's driver is bundled).

Maven runs with strict checksums (a corrupt download fails) and each artifact's SHA-1 is
compared with the ``.sha1`` file Maven keeps beside it in the local repository. The
unpacked server lives in ``$LAKEHOUSE_TRINO_HOME`` (default ``~/.cache/lakehouse/trino/476``);
``install.json`` there marks a finished install, so the next call returns at once.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import tarfile
import time
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from lakehouse.engines.trino.errors import TrinoInstallError, TrinoNotInstalledError
from lakehouse.trino_server.maven import Artifact, fetch_artifact, maven_repo
from lakehouse.trino_server.progress import NullReporter, Reporter

log = logging.getLogger(__name__)

TRINO_VERSION = "476"
SQLITE_JDBC_VERSION = "3.54.1.0"
HOME_VAR = "LAKEHOUSE_TRINO_HOME"
MARKER = "install.json"


SERVER = Artifact("io.trino", "trino-server-core", TRINO_VERSION, "tar.gz")
ICEBERG = Artifact("io.trino", "trino-iceberg", TRINO_VERSION, "zip")
SQLITE_JDBC = Artifact("org.xerial", "sqlite-jdbc", SQLITE_JDBC_VERSION, "jar")
ARTIFACTS = (SERVER, ICEBERG, SQLITE_JDBC)


@dataclass(frozen=True)
class Installation:
    """An unpacked Trino server in the cache."""

    home: Path
    version: str
    artifacts: dict[str, str] = field(default_factory=dict)  # coordinates -> sha1
    installed_at: datetime | None = None
    size_bytes: int = 0

    @property
    def server_dir(self) -> Path:
        return self.home / "server"

    @property
    def lib_dir(self) -> Path:
        return self.server_dir / "lib"

    @property
    def plugin_dir(self) -> Path:
        return self.server_dir / "plugin"

    def to_dict(self) -> dict[str, object]:
        return {
            "home": str(self.home),
            "server_dir": str(self.server_dir),
            "version": self.version,
            "artifacts": dict(self.artifacts),
            "installed_at": self.installed_at.isoformat() if self.installed_at else None,
            "size_bytes": self.size_bytes,
        }


@dataclass(frozen=True)
class InstallResult:
    """What ``install`` did: ``already_installed`` when the cache was reused."""

    installation: Installation
    already_installed: bool
    artifact_bytes: int
    seconds: float

    def to_dict(self) -> dict[str, object]:
        return {
            "already_installed": self.already_installed,
            "artifact_bytes": self.artifact_bytes,
            "seconds": round(self.seconds, 2),
            **self.installation.to_dict(),
        }


def trino_home(env: Mapping[str, str] | None = None) -> Path:
    """Where the server is cached: ``$LAKEHOUSE_TRINO_HOME`` or ``~/.cache/lakehouse/trino/476``."""
    env = os.environ if env is None else env
    if env.get(HOME_VAR):
        return Path(env[HOME_VAR]).expanduser().resolve()
    cache = Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return (cache / "lakehouse" / "trino" / TRINO_VERSION).expanduser().resolve()


def find_installation(home: Path | None = None) -> Installation | None:
    """The finished installation at ``home`` (default :func:`trino_home`), or None."""
    home = home or trino_home()
    try:
        data = json.loads((home / MARKER).read_text())
    except (OSError, ValueError):
        return None
    expected = {a.coordinates for a in ARTIFACTS}
    if set(data.get("artifacts", {})) != expected or data.get("version") != TRINO_VERSION:
        return None
    found = Installation(
        home=home,
        version=data["version"],
        artifacts=dict(data["artifacts"]),
        installed_at=datetime.fromisoformat(data["installed_at"]),
        size_bytes=int(data.get("size_bytes", 0)),
    )
    if not (found.lib_dir.is_dir() and (found.plugin_dir / "iceberg").is_dir()):
        return None
    return found


def require_installation(home: Path | None = None) -> Installation:
    found = find_installation(home)
    if found is None:
        raise TrinoNotInstalledError(
            f"Trino {TRINO_VERSION} is not installed in {home or trino_home()}: run "
            f"`lakehouse trino install` (set {HOME_VAR} to use another cache folder)"
        )
    return found


def install(
    *, home: Path | None = None, force: bool = False, reporter: Reporter | None = None
) -> InstallResult:
    """Download, verify and unpack Trino into the cache; reuse a finished install."""
    reporter = reporter or NullReporter()
    home = home or trino_home()
    started = time.monotonic()
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TrinoInstallError(
            f"cannot create the Trino cache {home}: {exc}; set {HOME_VAR}"
        ) from exc
    with _install_lock(home, reporter):
        existing = find_installation(home)
        if existing is not None and not force:
            return InstallResult(existing, True, 0, time.monotonic() - started)
        mvn = shutil.which("mvn")
        if mvn is None:
            raise TrinoInstallError(
                "Maven (mvn) is not on PATH; it downloads Trino by coordinates. Install it "
                "(Debian/Ubuntu: apt-get install maven) and run `lakehouse trino install` again"
            )
        staging = home / f".staging-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        try:
            downloads = staging / "downloads"
            downloads.mkdir(parents=True)
            repo = maven_repo()
            sums = {
                a.coordinates: fetch_artifact(
                    a, mvn=mvn, out=downloads, repo=repo, reporter=reporter
                )
                for a in ARTIFACTS
            }
            artifact_bytes = sum((downloads / a.filename).stat().st_size for a in ARTIFACTS)
            server = _unpack(downloads, staging, reporter)
            shutil.rmtree(downloads)
            if (home / "server").exists():
                shutil.rmtree(home / "server")
            server.rename(home / "server")
            size = _disk_size(home / "server")
            installation = Installation(home, TRINO_VERSION, sums, datetime.now(UTC), size)
            _write_marker(installation)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    reporter.stage(f"Trino {TRINO_VERSION} installed in {installation.server_dir}")
    return InstallResult(installation, False, artifact_bytes, time.monotonic() - started)


@contextmanager
def _install_lock(home: Path, reporter: Reporter) -> Iterator[None]:
    with open(home / ".install.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            reporter.stage("another install is running; waiting for it")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _disk_size(folder: Path) -> int:
    """Bytes of the files under ``folder``, each hard-linked file once."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for path in folder.rglob("*"):
        stat = path.lstat()
        if path.is_file() and (stat.st_dev, stat.st_ino) not in seen:
            seen.add((stat.st_dev, stat.st_ino))
            total += stat.st_size
    return total


def _unpack(downloads: Path, staging: Path, reporter: Reporter) -> Path:
    """Unpack the server, then the Iceberg plugin and SQLite driver into ``plugin/iceberg``."""
    reporter.stage(f"unpacking {SERVER.filename}")
    unpack = staging / "unpack"
    try:
        with tarfile.open(downloads / SERVER.filename) as tar:
            tar.extractall(unpack, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise TrinoInstallError(f"cannot unpack {SERVER.filename}: {exc}") from exc
    tops = [p for p in unpack.iterdir() if p.is_dir()]
    if len(tops) != 1 or not (tops[0] / "lib").is_dir():
        raise TrinoInstallError(f"{SERVER.filename} does not hold one server folder with lib/")
    server = tops[0]
    target = server / "plugin" / "iceberg"
    reporter.stage(f"unpacking {ICEBERG.filename} into plugin/iceberg")
    try:
        with zipfile.ZipFile(downloads / ICEBERG.filename) as archive:
            for member in archive.infolist():
                parts = Path(member.filename).parts
                if (
                    member.is_dir()
                    or len(parts) < 2
                    or ".." in parts
                    or Path(member.filename).is_absolute()
                ):
                    continue
                dest = target.joinpath(*parts[1:])
                dest.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(member) as src, open(dest, "wb") as dst:
                    shutil.copyfileobj(src, dst)
    except (zipfile.BadZipFile, OSError) as exc:
        raise TrinoInstallError(f"cannot unpack {ICEBERG.filename}: {exc}") from exc
    if not any(target.glob("io.trino_trino-iceberg-*.jar")):
        raise TrinoInstallError(f"{ICEBERG.filename} did not contain the Iceberg connector jar")
    shutil.copy2(downloads / SQLITE_JDBC.filename, target / SQLITE_JDBC.filename)
    return server


def _write_marker(installation: Installation) -> None:
    data = {
        "version": installation.version,
        "artifacts": installation.artifacts,
        "installed_at": installation.installed_at.isoformat()
        if installation.installed_at
        else None,
        "size_bytes": installation.size_bytes,
    }
    tmp = installation.home / f"{MARKER}.tmp"
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(installation.home / MARKER)
