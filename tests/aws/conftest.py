"""Fixtures for the AWS path: a moto server (S3, Glue, Athena API) on 127.0.0.1, and a
Trino 476 whose Iceberg catalog is the Glue catalog on that server."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lakehouse.settings import Settings, TableName
from tests.support.components import free_port, unavailable
from tests.support.moto import MotoServer, MotoUnavailable, running_moto
from tests.trino.conftest import TEST_HEAP

_buckets = itertools.count()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    try:
        with running_moto() as server:
            yield server
    except MotoUnavailable as exc:
        unavailable("moto (S3/Glue emulator)", str(exc))


@pytest.fixture
def bucket(moto_server: MotoServer) -> str:
    """A fresh, empty bucket for one test."""
    name = f"lake-{next(_buckets)}"
    moto_server.client("s3").create_bucket(Bucket=name)
    return name


@pytest.fixture
def aws_env(moto_server: MotoServer, home: Path, monkeypatch: pytest.MonkeyPatch) -> MotoServer:
    """Standard AWS variables pointing at the emulator (what the default chain reads)."""
    from tests.support.moto import ACCESS_KEY, SECRET_KEY

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_REGION", moto_server.region)
    monkeypatch.setenv("AWS_DEFAULT_REGION", moto_server.region)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.endpoint)
    return moto_server


# --- Trino 476 with its Glue catalog pointed at the moto server ---------------------------

GLUE_CATALOG = "glue"  # the pyiceberg catalog name (PYICEBERG_CATALOG__GLUE__*)
_glue_lakes: list[GlueLake] = []


@dataclass
class GlueLake:
    """A Glue catalog on the moto server (S3 warehouse ``s3://<bucket>/warehouse``) and the
    one Trino server of the session that reads it through ``iceberg.catalog.type=glue``.

    The server is started on demand (:meth:`ensure`) by the ``glue_trino`` fixture and
    stopped as soon as the next test does not need it (``pytest_runtest_teardown`` below),
    so it never runs beside the Trino servers of other modules. A start that failed is
    not retried: every later test gets the same reason (skip locally, fail in CI)."""

    moto: MotoServer
    bucket: str
    home: Path
    port: int
    installation: Any
    java: Any
    running: bool = False
    failure: str | None = None
    startup_seconds: float = 0.0
    starts: int = 0

    def catalog_properties(self) -> dict[str, str]:
        return {
            "type": "glue",
            **self.moto.s3_properties(),
            **self.moto.glue_properties(),
            "warehouse": f"s3://{self.bucket}/warehouse",
        }

    def env(self) -> dict[str, str]:
        """``PYICEBERG_CATALOG__GLUE__*`` variables configuring the pyiceberg Glue catalog."""
        out = {}
        for key, value in self.catalog_properties().items():
            env_key = key.replace(".", "__").replace("-", "_").upper()
            out[f"PYICEBERG_CATALOG__{GLUE_CATALOG.upper()}__{env_key}"] = value
        return out

    def apply_env(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """No ambient LAKEHOUSE_*/PYICEBERG_* setting, then the Glue catalog's variables."""
        for key in list(os.environ):
            if key.startswith(("LAKEHOUSE_", "PYICEBERG_")):
                monkeypatch.delenv(key)
        for key, value in self.env().items():
            monkeypatch.setenv(key, value)

    @contextmanager
    def env_context(self) -> Iterator[None]:
        with pytest.MonkeyPatch.context() as monkeypatch:
            self.apply_env(monkeypatch)
            yield

    def settings(self, table: str = "analytics.events") -> Settings:
        return Settings(home=self.home, catalog=GLUE_CATALOG, table=TableName.parse(table))

    def paths(self) -> Any:
        from lakehouse.trino_server.instance import instance_paths

        return instance_paths(self.settings(), self.port)

    def ensure(self) -> GlueLake:
        if self.running:
            return self
        if self.failure is not None:
            unavailable("Trino (Glue catalog on moto)", self.failure)
        from lakehouse.trino_server import ServerOptions, TrinoError, start

        try:
            with self.env_context():  # the catalog file is derived from the pyiceberg config now
                result = start(
                    self.settings(),
                    ServerOptions(port=self.port, heap=TEST_HEAP),
                    installation=self.installation,
                    java=self.java,
                )
        except TrinoError as exc:
            self.failure = f"the server did not start: {exc}"
            unavailable("Trino (Glue catalog on moto)", self.failure)
        self.running = True
        self.starts += 1
        self.startup_seconds = result.startup_seconds
        return self

    def stop(self) -> None:
        if self.running:
            from lakehouse.trino_server import stop

            stop(self.settings(), port=self.port)
            self.running = False


@pytest.fixture(scope="session")
def glue_lake(
    moto_server: MotoServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GlueLake]:
    """The session's Glue catalog on moto and its (not yet started) Trino server."""
    from tests.trino.conftest import installed_trino

    installation, java = installed_trino()  # skip locally / fail in CI without Trino
    bucket = "lake-glue-trino"
    moto_server.client("s3").create_bucket(Bucket=bucket)
    lake = GlueLake(
        moto_server, bucket, tmp_path_factory.mktemp("glue-trino"), free_port(), installation, java
    )
    _glue_lakes.append(lake)
    try:
        yield lake
    finally:
        lake.stop()
        _glue_lakes.remove(lake)


@pytest.fixture
def glue_env(glue_lake: GlueLake, monkeypatch: pytest.MonkeyPatch) -> GlueLake:
    """The Glue catalog configured in the environment for this test."""
    glue_lake.apply_env(monkeypatch)
    return glue_lake


@pytest.fixture
def glue_trino(glue_env: GlueLake) -> GlueLake:
    """The running Trino whose ``lakehouse`` catalog is the Glue catalog on moto."""
    return glue_env.ensure()


def _needs_glue_trino(item: pytest.Item | None) -> bool:
    return item is not None and "glue_trino" in getattr(item, "fixturenames", ())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the modules that use the Glue-catalog Trino one after another (where the first
    of them is), so the session starts that server once."""
    modules = {item.module for item in items if _needs_glue_trino(item)}  # type: ignore[attr-defined]
    if len(modules) < 2:
        return
    picked = [i for i, item in enumerate(items) if getattr(item, "module", None) in modules]
    chosen = [items[i] for i in picked]
    taken = set(picked)
    rest = [item for i, item in enumerate(items) if i not in taken]
    at = picked[0]
    items[:] = rest[:at] + chosen + rest[at:]


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Stop the Glue-catalog Trino once the next test does not need it (one JVM at a time
    on the 2-core machines: other modules start their own servers)."""
    if _needs_glue_trino(item) and not _needs_glue_trino(nextitem):
        for lake in _glue_lakes:
            lake.stop()
