"""Fixtures for the stream tests: moto's server (Kinesis resharding as AWS does it, see
:mod:`tests.streaming.kinesis_moto`) on 127.0.0.1, and the AWS variables pointing at it."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.streaming.feeder import Feeder
from tests.support.components import unavailable
from tests.support.moto import ACCESS_KEY, SECRET_KEY, MotoServer, MotoUnavailable, running_moto

_streams = itertools.count()


@pytest.fixture(scope="session")
def kinesis_server() -> Iterator[MotoServer]:
    try:
        with running_moto("tests.streaming.kinesis_moto") as server:
            yield server
    except MotoUnavailable as exc:
        unavailable("moto (Kinesis emulator)", str(exc))


@pytest.fixture
def kinesis_env(
    kinesis_server: MotoServer, home: Path, monkeypatch: pytest.MonkeyPatch
) -> MotoServer:
    """The standard AWS variables pointing at the emulator (what boto3's chain reads)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_REGION", kinesis_server.region)
    monkeypatch.setenv("AWS_DEFAULT_REGION", kinesis_server.region)
    monkeypatch.setenv("AWS_ENDPOINT_URL", kinesis_server.endpoint)
    return kinesis_server


@pytest.fixture
def feeder(kinesis_env: MotoServer) -> Feeder:
    """A fresh stream of two shards, and what was put into it."""
    return Feeder.create(kinesis_env.client("kinesis"), f"events-{next(_streams)}", shards=2)
