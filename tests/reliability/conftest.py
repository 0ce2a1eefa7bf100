"""Fixtures of the reliability tests: a private PostgreSQL cluster for the runs that stop
and start the server (the shared session server stays up for everyone else)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.reliability.harness import SUMMARIES
from tests.support.components import unavailable
from tests.support.postgres import PostgresServer, PostgresUnavailable, running_postgres


@pytest.fixture(scope="module")
def private_postgres() -> Iterator[PostgresServer]:
    try:
        with running_postgres() as server:
            yield server
    except PostgresUnavailable as exc:
        unavailable("PostgreSQL", str(exc))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if SUMMARIES:
        terminalreporter.section("reliability campaign, short mode")
        for summary in SUMMARIES:
            terminalreporter.write_line(summary)
