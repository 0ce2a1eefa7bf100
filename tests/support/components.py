"""Start real components for tests; in CI a component that cannot start fails the test."""

from __future__ import annotations

import os
import socket

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def unavailable(component: str, reason: str) -> None:
    """Skip locally, fail in CI (``CI=true``): a missing real component is a CI failure."""
    message = f"{component} is not available: {reason}"
    if in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
