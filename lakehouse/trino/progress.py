"""Progress reporting: the library stays silent unless the caller hands it a reporter.

The CLI passes a rich (TTY) or plain-line reporter; library callers get
:class:`NullReporter` by default, or :class:`LogReporter` to see stages in the logs.
"""

from __future__ import annotations

import logging
from typing import Protocol

log = logging.getLogger(__name__)


class Reporter(Protocol):
    """Receives what a long operation is doing."""

    def stage(self, message: str) -> None:
        """A new step began (``downloading trino-iceberg-476.zip``, ``waiting for Trino``)."""

    def transfer(self, name: str, done_bytes: int, total_bytes: int | None) -> None:
        """Bytes of a download so far (``total_bytes`` None when unknown)."""

    def waiting(self, message: str, elapsed_seconds: float) -> None:
        """Still waiting for something (called about twice a second)."""


class NullReporter:
    """Reports nothing: the library default."""

    def stage(self, message: str) -> None:
        pass

    def transfer(self, name: str, done_bytes: int, total_bytes: int | None) -> None:
        pass

    def waiting(self, message: str, elapsed_seconds: float) -> None:
        pass


class LogReporter:
    """Reports stages through :mod:`logging` (INFO); transfers and waits at DEBUG."""

    def stage(self, message: str) -> None:
        log.info("%s", message)

    def transfer(self, name: str, done_bytes: int, total_bytes: int | None) -> None:
        log.debug("%s: %d/%s bytes", name, done_bytes, total_bytes)

    def waiting(self, message: str, elapsed_seconds: float) -> None:
        log.debug("%s (%.0f s)", message, elapsed_seconds)
