"""Fixtures for the AWS path: a moto server (S3, Glue, Athena API) on 127.0.0.1."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.components import unavailable
from tests.support.moto import MotoServer, MotoUnavailable, running_moto

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
