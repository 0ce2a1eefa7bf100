"""Progress reporting: the library stays silent unless the caller hands it a reporter.

The CLI passes :class:`ConsoleReporter` (rich bars and spinners on a terminal, plain
lines otherwise, all on stderr); library callers get
:class:`NullReporter` by default, or :class:`LogReporter` to see stages in the logs.
"""

from __future__ import annotations

import logging
import sys
from types import TracebackType
from typing import Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.status import Status

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


class ConsoleReporter:
    """Progress on stderr: rich bars and spinners on a terminal, plain lines otherwise."""

    def __init__(self, *, quiet: bool = False) -> None:
        self.console = Console(stderr=True)
        self.quiet = quiet
        self.live = self.console.is_terminal and not quiet
        self._progress: Progress | None = None
        self._tasks: dict[str, TaskID] = {}
        self._status: Status | None = None
        self._plain_marks: dict[str, int] = {}
        self._last_wait = 0.0

    def __enter__(self) -> ConsoleReporter:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._stop_live()

    def _stop_live(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress, self._tasks = None, {}
        if self._status is not None:
            self._status.stop()
            self._status = None

    def _say(self, text: str) -> None:
        if not self.quiet:
            print(text, file=sys.stderr, flush=True)

    def stage(self, message: str) -> None:
        self._stop_live()
        self._say(message)

    def transfer(self, name: str, done_bytes: int, total_bytes: int | None) -> None:
        if self.quiet:
            return
        if self.live:
            if self._progress is None:
                self._stop_live()
                self._progress = Progress(
                    TextColumn("  {task.description}"),
                    BarColumn(),
                    DownloadColumn(),
                    TransferSpeedColumn(),
                    TimeRemainingColumn(),
                    console=self.console,
                )
                self._progress.start()
            if name not in self._tasks:
                self._tasks[name] = self._progress.add_task(name, total=total_bytes)
            self._progress.update(
                self._tasks[name], completed=done_bytes, total=total_bytes or done_bytes
            )
            return
        if not total_bytes:
            return
        tenth = min(10, done_bytes * 10 // total_bytes)
        if self._plain_marks.get(name, -1) < tenth:
            self._plain_marks[name] = tenth
            self._say(
                f"  {name}: {done_bytes / 1e6:.0f}/{total_bytes / 1e6:.0f} MB ({tenth * 10}%)"
            )

    def waiting(self, message: str, elapsed_seconds: float) -> None:
        if self.quiet:
            return
        if self.live:
            text = f"{message} [{elapsed_seconds:.0f} s]"
            if self._status is None:
                self._stop_live()
                self._status = self.console.status(text)
                self._status.start()
            else:
                self._status.update(text)
        elif elapsed_seconds - self._last_wait >= 5:
            self._last_wait = elapsed_seconds
            self._say(f"  still waiting ({elapsed_seconds:.0f} s)")
