"""Fetch Maven artifacts by coordinates with the Maven client, and check their SHA-1.

``mvn`` runs ``maven-dependency-plugin:copy`` with ``--strict-checksums`` (a download
whose checksum does not match fails), from an empty folder so no project is picked up.
Its transfer progress lines (``Progress (1): 35/346 MB``) are passed to the reporter.
Afterwards the artifact in the local repository is compared with the ``.sha1`` file
Maven stored beside it, and the copy with the artifact.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import subprocess
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from lakehouse.engines.trino.errors import TrinoInstallError
from lakehouse.trino_server.progress import Reporter

log = logging.getLogger(__name__)

DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
MAVEN_REPO_VAR = "LAKEHOUSE_TRINO_MAVEN_REPO"


@dataclass(frozen=True)
class Artifact:
    """A Maven artifact named by its coordinates."""

    group: str
    artifact: str
    version: str
    packaging: str

    @property
    def coordinates(self) -> str:
        return f"{self.group}:{self.artifact}:{self.version}:{self.packaging}"

    @property
    def filename(self) -> str:
        return f"{self.artifact}-{self.version}.{self.packaging}"

    def repo_path(self, repo: Path) -> Path:
        return repo.joinpath(*self.group.split("."), self.artifact, self.version, self.filename)


def maven_repo(env: Mapping[str, str] | None = None) -> Path:
    """The Maven local repository used for the download (``~/.m2/repository`` by default)."""
    env = os.environ if env is None else env
    if env.get(MAVEN_REPO_VAR):
        return Path(env[MAVEN_REPO_VAR]).expanduser().resolve()
    return Path.home() / ".m2" / "repository"


_PROGRESS = re.compile(r"Progress \(\d+\): ([\d.]+)(?:/([\d.]+))? (B|kB|MB|GB)")
_DOWNLOADING = re.compile(r"Downloading from \S+: (\S+)")
_UNITS = {"B": 1, "kB": 1000, "MB": 1000**2, "GB": 1000**3}
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def fetch_artifact(
    artifact: Artifact, *, mvn: str, out: Path, repo: Path, reporter: Reporter
) -> str:
    """Copy one artifact into ``out`` through Maven; returns its verified SHA-1. A local
    copy whose SHA-1 does not match its ``.sha1`` file is deleted and fetched once more."""
    for attempt in (1, 2):
        reporter.stage(f"fetching {artifact.coordinates}")
        _run_maven(mvn, artifact, out, repo, reporter)
        local = artifact.repo_path(repo)
        copied = out / artifact.filename
        digest = sha1_of(copied)
        problem = _checksum_problem(artifact, local, digest)
        if problem is None:
            return digest
        if attempt == 1:
            log.warning("%s; deleting it from the Maven repository and downloading again", problem)
            reporter.stage(f"{problem}; downloading it again")
            for path in local.parent.glob(f"{artifact.filename}*"):
                path.unlink(missing_ok=True)
            copied.unlink(missing_ok=True)
            continue
        raise TrinoInstallError(
            f"{problem} after a fresh download; check the network or the mirror"
        )
    raise AssertionError("unreachable")


def _checksum_problem(artifact: Artifact, local: Path, digest: str) -> str | None:
    if not local.is_file():
        return f"{artifact.coordinates} is not in the Maven repository at {local}"
    if sha1_of(local) != digest:
        return f"the copy of {artifact.filename} differs from {local}"
    sha1_file = local.with_name(local.name + ".sha1")
    if not sha1_file.is_file():
        log.warning("%s has no .sha1 beside it; relying on Maven's own checksum check", local)
        return None
    words = sha1_file.read_text(errors="replace").split()
    expected = words[0].lower() if words else ""
    if expected != digest:
        return f"SHA-1 of {local} is {digest}, its .sha1 file says {expected or 'nothing'}"
    return None


def _run_maven(mvn: str, artifact: Artifact, out: Path, repo: Path, reporter: Reporter) -> None:
    cmd = [
        mvn,
        "--strict-checksums",
        "-Dstyle.color=never",
        f"-Dmaven.repo.local={repo}",
        f"{DEPENDENCY_PLUGIN}:copy",
        f"-Dartifact={artifact.coordinates}",
        f"-DoutputDirectory={out}",
        "-Dmdep.overWriteReleases=true",
    ]
    log.info("running %s", " ".join(cmd))
    tail: deque[str] = deque(maxlen=25)
    current = ""
    try:
        proc = subprocess.Popen(
            cmd,
            cwd=out,  # an empty folder: no pom.xml around to be picked up
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    except OSError as exc:
        raise TrinoInstallError(f"cannot run Maven ({mvn}): {exc}") from exc
    assert proc.stdout is not None
    for raw in proc.stdout:
        line = _ANSI.sub("", raw).rstrip()
        if not line.strip():
            continue
        downloading = _DOWNLOADING.search(line)
        if downloading:
            current = downloading.group(1).rsplit("/", 1)[-1]
        progress = _PROGRESS.search(line)
        if progress:
            if current == artifact.filename:
                unit = _UNITS[progress.group(3)]
                total = progress.group(2)
                reporter.transfer(
                    current,
                    int(float(progress.group(1)) * unit),
                    int(float(total) * unit) if total else None,
                )
            continue
        tail.append(line)
        log.debug("mvn: %s", line)
    code = proc.wait()
    if code != 0:
        shown = "\n".join(f"  {line}" for line in tail)
        raise TrinoInstallError(
            f"Maven could not fetch {artifact.coordinates} (exit code {code}). Its last lines:\n"
            f"{shown}\nCheck the network and Maven's settings (~/.m2/settings.xml, MAVEN_OPTS), "
            "then run `lakehouse trino install` again"
        )
    if not (out / artifact.filename).is_file():
        raise TrinoInstallError(f"Maven finished but {out / artifact.filename} is missing")


def sha1_of(path: Path) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
