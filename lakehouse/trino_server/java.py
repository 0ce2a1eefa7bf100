"""Find a Java runtime that can run Trino (476 needs Java 24 or newer).

Looked at in this order:

1. ``LAKEHOUSE_TRINO_JAVA_HOME``: when set it must be suitable (an explicit choice is
   never silently overridden);
2. ``JAVA_HOME``, when it is new enough (it often points at an older JDK for other tools);
3. the JDKs installed under ``/usr/lib/jvm`` (Debian, Ubuntu, Temurin packages) and
   ``/Library/Java/JavaVirtualMachines`` (macOS): Java 24, the release Trino 476 is built
   and tested with, is preferred, then the newest;
4. ``java`` on ``PATH``.

Versions are read from the JDK's ``release`` file (``JAVA_VERSION="25.0.3"``), falling
back to ``java -XshowSettings:properties -version`` when a runtime has no such file.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from lakehouse.engines.trino.errors import JavaNotFoundError

log = logging.getLogger(__name__)

MIN_JAVA = 24
PREFERRED_JAVA = 24
JAVA_HOME_VAR = "LAKEHOUSE_TRINO_JAVA_HOME"
JVM_DIRS = (Path("/usr/lib/jvm"), Path("/Library/Java/JavaVirtualMachines"))

_RELEASE_VERSION = re.compile(r'^JAVA_VERSION="?([^"\s]+)"?\s*$', re.MULTILINE)
_PROPERTY_VERSION = re.compile(r"^\s*java\.version\s*=\s*(\S+)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class JavaRuntime:
    """A Java installation: its home, full version and where we found it."""

    home: Path
    version: str
    major: int
    source: str

    @property
    def java(self) -> Path:
        return self.home / "bin" / "java"

    def to_dict(self) -> dict[str, object]:
        return {
            "home": str(self.home),
            "version": self.version,
            "major": self.major,
            "source": self.source,
        }


def parse_major(version: str) -> int | None:
    """``25.0.3`` -> 25, ``24`` -> 24, ``1.8.0_392`` -> 8, ``26-ea`` -> 26; None if unreadable."""
    match = re.match(r"^(\d+)(?:\.(\d+))?", version.strip())
    if not match:
        return None
    first = int(match.group(1))
    if first == 1 and match.group(2):
        return int(match.group(2))
    return first


def read_version(home: Path) -> str | None:
    """The Java version of the runtime at ``home``, or None if it is not a usable runtime."""
    if not (home / "bin" / "java").is_file():
        return None
    release = home / "release"
    try:
        found = _RELEASE_VERSION.search(release.read_text(errors="replace"))
    except OSError:
        found = None
    if found:
        return found.group(1)
    try:
        proc = subprocess.run(
            [str(home / "bin" / "java"), "-XshowSettings:properties", "-version"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.debug("cannot run %s/bin/java: %s", home, exc)
        return None
    found = _PROPERTY_VERSION.search(proc.stderr + proc.stdout)
    return found.group(1) if found else None


def inspect_runtime(home: Path, source: str) -> JavaRuntime | None:
    version = read_version(home)
    major = parse_major(version) if version else None
    if version is None or major is None:
        return None
    return JavaRuntime(home=home, version=version, major=major, source=source)


def installed_runtimes(jvm_dirs: Iterable[Path] = JVM_DIRS) -> list[JavaRuntime]:
    """Every runtime under the usual JDK folders, each real folder once."""
    seen: set[Path] = set()
    found: list[JavaRuntime] = []
    for root in jvm_dirs:
        try:
            children = sorted(root.iterdir())
        except OSError:
            continue
        for child in children:
            home = child / "Contents" / "Home" if (child / "Contents" / "Home").is_dir() else child
            real = home.resolve()
            if real in seen or not real.is_dir():
                continue
            seen.add(real)
            runtime = inspect_runtime(real, str(root))
            if runtime is not None:
                found.append(runtime)
    return found


def _preference(runtime: JavaRuntime) -> tuple[int, int]:
    return (1 if runtime.major == PREFERRED_JAVA else 0, runtime.major)


def find_java(
    *,
    env: Mapping[str, str] | None = None,
    jvm_dirs: Iterable[Path] = JVM_DIRS,
    minimum: int = MIN_JAVA,
    search_path: bool = True,
) -> JavaRuntime:
    """The Java runtime to run Trino with; :class:`JavaNotFoundError` says how to get one."""
    env = os.environ if env is None else env
    tried: list[str] = []

    explicit = env.get(JAVA_HOME_VAR, "")
    if explicit:
        runtime = inspect_runtime(Path(explicit).expanduser(), JAVA_HOME_VAR)
        if runtime is not None and runtime.major >= minimum:
            return runtime
        what = f"Java {runtime.version}" if runtime else "no Java runtime (bin/java missing)"
        raise JavaNotFoundError(
            f"{JAVA_HOME_VAR}={explicit} is {what}; Trino needs Java {minimum} or newer. "
            f"Point {JAVA_HOME_VAR} at a JDK {minimum}+ or unset it to search the installed JDKs"
        )

    java_home = env.get("JAVA_HOME", "")
    if java_home:
        runtime = inspect_runtime(Path(java_home).expanduser(), "JAVA_HOME")
        if runtime is not None and runtime.major >= minimum:
            return runtime
        tried.append(f"JAVA_HOME={java_home} ({runtime.version if runtime else 'no bin/java'})")

    installed = installed_runtimes(jvm_dirs)
    suitable = [r for r in installed if r.major >= minimum]
    if suitable:
        return max(suitable, key=_preference)
    tried.extend(f"{r.home} ({r.version})" for r in installed)

    if search_path:
        on_path = shutil.which("java", path=env.get("PATH"))
        if on_path:
            home = Path(os.path.realpath(on_path)).parent.parent
            runtime = inspect_runtime(home, "PATH")
            if runtime is not None and runtime.major >= minimum:
                return runtime
            if runtime is not None and all(str(home) not in t for t in tried):
                tried.append(f"java on PATH: {home} ({runtime.version})")

    looked = "; ".join(tried) if tried else "none found"
    raise JavaNotFoundError(
        f"no Java {minimum}+ runtime found for Trino (tried: {looked}). Install a JDK {minimum} "
        "or newer, e.g. Eclipse Temurin 25 (Debian/Ubuntu package temurin-25-jdk from the "
        "Adoptium apt repository) or your distribution's openjdk-25-jdk, then either leave it "
        f"under /usr/lib/jvm or set {JAVA_HOME_VAR}=/path/to/that/jdk"
    )
