"""Progress reporters: the caller picks one; the library default reports nothing.

A reporter sees long work as named tasks with a total and steps. :class:`NullReporter`
is the default, :class:`LogReporter` logs each step, :class:`RichReporter` draws rich
progress bars (the CLI uses it on a terminal).
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

log = logging.getLogger(__name__)


class ProgressReporter(Protocol):
    """What maintenance tells about long work."""

    def start(self, task: str, total: int | None) -> None:
        """A task begins; ``total`` steps are expected (None: unknown)."""

    def advance(self, task: str, steps: int = 1, detail: str = "") -> None:
        """``steps`` more steps of ``task`` are done."""

    def finish(self, task: str) -> None:
        """The task is over (done, failed or stopped)."""


class NullReporter:
    """Reports nothing (the library default)."""

    def start(self, task: str, total: int | None) -> None:
        pass

    def advance(self, task: str, steps: int = 1, detail: str = "") -> None:
        pass

    def finish(self, task: str) -> None:
        pass


class LogReporter:
    """Logs every step at INFO (handy under a scheduler whose logs are kept)."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger or log
        self._done: dict[str, int] = {}
        self._total: dict[str, int | None] = {}

    def start(self, task: str, total: int | None) -> None:
        self._done[task] = 0
        self._total[task] = total
        self._log.info("%s: started (%s steps)", task, "?" if total is None else total)

    def advance(self, task: str, steps: int = 1, detail: str = "") -> None:
        self._done[task] = self._done.get(task, 0) + steps
        total = self._total.get(task)
        self._log.info(
            "%s: %s/%s %s", task, self._done[task], "?" if total is None else total, detail
        )

    def finish(self, task: str) -> None:
        self._log.info("%s: finished", task)


class RichReporter:
    """Rich progress bars on a terminal (stderr by default)."""

    def __init__(self, console: Any | None = None) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[detail]}"),
            console=console or Console(stderr=True),
            transient=False,
        )
        self._tasks: dict[str, Any] = {}

    def start(self, task: str, total: int | None) -> None:
        if not self._tasks:
            self._progress.start()
        self._tasks[task] = self._progress.add_task(task, total=total, detail="")

    def advance(self, task: str, steps: int = 1, detail: str = "") -> None:
        if task in self._tasks:
            self._progress.update(self._tasks[task], advance=steps, detail=detail)

    def finish(self, task: str) -> None:
        task_id = self._tasks.pop(task, None)
        if task_id is not None:
            self._progress.update(task_id, detail="done")
        if not self._tasks:
            self._progress.stop()
