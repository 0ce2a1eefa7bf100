"""Java discovery over fake JDK folders (a ``release`` file and a ``bin/java``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lakehouse.trino_server import JavaNotFoundError, find_java
from lakehouse.trino_server.java import installed_runtimes, parse_major, read_version


def fake_jdk(
    root: Path, name: str, version: str | None, *, script_version: str | None = None
) -> Path:
    home = root / name
    (home / "bin").mkdir(parents=True)
    java = home / "bin" / "java"
    if script_version:  # a runtime without a release file: answer like `java -XshowSettings`
        java.write_text(f"#!/bin/sh\necho '    java.version = {script_version}' >&2\n")
    else:
        java.write_text("#!/bin/sh\nexit 1\n")
    java.chmod(0o755)
    if version:
        (home / "release").write_text(f'IMPLEMENTOR="Test"\nJAVA_VERSION="{version}"\n')
    return home


@pytest.mark.parametrize(
    ("text", "major"),
    [("25.0.3", 25), ("24", 24), ("1.8.0_392", 8), ("26-ea", 26), ("17.0.15+6", 17), ("x", None)],
)
def test_parse_major(text: str, major: int | None) -> None:
    assert parse_major(text) == major


def test_prefers_java_24_then_the_newest(tmp_path: Path) -> None:
    fake_jdk(tmp_path, "java-17-openjdk", "17.0.15")
    fake_jdk(tmp_path, "temurin-25-jdk", "25.0.3")
    fake_jdk(tmp_path, "temurin-26-jdk", "26.0.1")
    found = find_java(env={}, jvm_dirs=[tmp_path], search_path=False)
    assert (found.major, found.home.name, found.source) == (26, "temurin-26-jdk", str(tmp_path))
    fake_jdk(tmp_path, "openjdk-24", "24.0.2")
    assert find_java(env={}, jvm_dirs=[tmp_path], search_path=False).version == "24.0.2"


def test_explicit_variable_wins_and_must_be_suitable(tmp_path: Path) -> None:
    old = fake_jdk(tmp_path / "a", "jdk17", "17.0.15")
    new = fake_jdk(tmp_path / "a", "jdk25", "25.0.3")
    env = {"LAKEHOUSE_TRINO_JAVA_HOME": str(new), "JAVA_HOME": str(old)}
    found = find_java(env=env, jvm_dirs=[], search_path=False)
    assert found.home == new and found.source == "LAKEHOUSE_TRINO_JAVA_HOME"
    with pytest.raises(JavaNotFoundError, match=r"LAKEHOUSE_TRINO_JAVA_HOME=.*Java 17\.0\.15"):
        find_java(
            env={"LAKEHOUSE_TRINO_JAVA_HOME": str(old)},
            jvm_dirs=[tmp_path / "a"],
            search_path=False,
        )


def test_old_java_home_falls_through_to_installed_jdks(tmp_path: Path) -> None:
    old = fake_jdk(tmp_path / "home", "jdk17", "17.0.15")
    fake_jdk(tmp_path / "jvm", "temurin-25", "25.0.3")
    found = find_java(env={"JAVA_HOME": str(old)}, jvm_dirs=[tmp_path / "jvm"], search_path=False)
    assert found.major == 25
    new = fake_jdk(tmp_path / "home", "jdk24", "24.0.1")
    assert (
        find_java(env={"JAVA_HOME": str(new)}, jvm_dirs=[], search_path=False).source == "JAVA_HOME"
    )


def test_no_suitable_java_says_what_was_tried_and_how_to_fix(tmp_path: Path) -> None:
    fake_jdk(tmp_path, "java-17", "17.0.15")
    with pytest.raises(JavaNotFoundError) as info:
        find_java(env={"JAVA_HOME": "/nowhere"}, jvm_dirs=[tmp_path], search_path=False)
    message = str(info.value)
    assert "Java 24+" in message or "Java 24" in message
    assert "java-17 (17.0.15)" in message and "JAVA_HOME=/nowhere" in message
    assert "LAKEHOUSE_TRINO_JAVA_HOME" in message and "temurin-25-jdk" in message


def test_version_from_running_java_when_there_is_no_release_file(tmp_path: Path) -> None:
    home = fake_jdk(tmp_path, "bare", None, script_version="24.0.2")
    assert read_version(home) == "24.0.2"
    assert find_java(env={}, jvm_dirs=[tmp_path], search_path=False).home == home


def test_symlinked_jdks_are_listed_once(tmp_path: Path) -> None:
    real = fake_jdk(tmp_path, "java-25-real", "25.0.3")
    (tmp_path / "default-java").symlink_to(real)
    assert [r.home for r in installed_runtimes([tmp_path])] == [real]
