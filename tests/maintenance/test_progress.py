"""Progress reporters: the library reports nothing by default; the CLI's rich bars and
the log reporter see every group."""

from __future__ import annotations

import io
import logging

import pytest
from pyiceberg.table import Table
from rich.console import Console

from maintenance import LogReporter, RichReporter, compact
from tests.maintenance.builders import Fed


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, object]] = []

    def start(self, task: str, total: int | None) -> None:
        self.events.append(("start", task, total))

    def advance(self, task: str, steps: int = 1, detail: str = "") -> None:
        self.events.append(("advance", task, detail))

    def finish(self, task: str) -> None:
        self.events.append(("finish", task, None))


def test_reporters_see_each_group(
    sqlite_fed: tuple[Table, Fed], caplog: pytest.LogCaptureFixture
) -> None:
    table, _ = sqlite_fed
    recorder = Recorder()
    compact(table, reporter=recorder)
    assert recorder.events[0] == ("start", "compaction", 3)
    assert [e[2] for e in recorder.events if e[0] == "advance"] == [
        "2024-05-01T00#1",
        "2024-05-01T01#1",
        "2024-05-01T02#1",
    ]
    assert recorder.events[-1] == ("finish", "compaction", None)
    out = io.StringIO()
    rich = RichReporter(Console(file=out, force_terminal=True, width=100))
    rich.start("compaction", 2)
    rich.advance("compaction", 1, "g1")
    rich.advance("compaction", 1, "g2")
    rich.finish("compaction")
    assert "compaction" in out.getvalue() and "2/2" in out.getvalue()
    with caplog.at_level(logging.INFO, logger="maintenance.progress"):
        log_reporter = LogReporter()
        log_reporter.start("expiry", None)
        log_reporter.advance("expiry", 2, "x")
        log_reporter.finish("expiry")
    assert "expiry: 2/? x" in caplog.text
