"""Named fault points: crash tests stop a process at an exact step, not at a guess.

Writers and maintenance call :func:`point` at the steps where a crash matters (files
written but not committed, events committed but not their rejects, ...). It does
nothing unless ``LAKEHOUSE_FAULT_POINT`` names that point, so the cost in production
is one environment lookup. The variable reads ``NAME[:N[:ACTION]]``:

* ``NAME``: the point (see :data:`POINTS`); ``N``: act on its N-th hit in the process
  (default 1); ``ACTION``: ``kill`` (SIGKILL the process itself, the default) or
  ``raise`` (raise :class:`FaultInjected`).
* When ``LAKEHOUSE_FAULT_MARKER`` names a file, the point appends one line
  ``NAME N PID`` to it (flushed and synced) before acting, so a test can tell that the
  process died *there* and not somewhere else.

Test-only: nothing in the project sets these variables.
"""

from __future__ import annotations

import os
import signal

ENV = "LAKEHOUSE_FAULT_POINT"
MARKER_ENV = "LAKEHOUSE_FAULT_MARKER"

POINTS = {
    "write.files-written": "a batch's data files are written, its commit not yet made",
    "write.events-committed": "a batch's events are committed, its rejects not yet",
    "write.rejects-committed": "a batch's rejects are committed, the flush not yet done",
    "ingest.before-ledger": "a batch is committed, its positions not yet in the ledger",
    "compact.files-written": "a compaction group's output is written, not committed",
    "compact.group-committed": "a compaction group is committed, the next not started",
    "expire.committed": "the expiry is committed, no file deleted yet",
    "expire.group-deleted": "one kind of expired files is deleted (data, manifests, lists)",
}

_hits: dict[str, int] = {}


class FaultInjected(RuntimeError):
    """Raised by a fault point whose action is ``raise``."""


def point(name: str) -> None:
    """A named step; stops the process here when ``LAKEHOUSE_FAULT_POINT`` says so."""
    spec = os.environ.get(ENV)
    if spec:
        _trip(name, spec)


def _trip(name: str, spec: str) -> None:
    wanted, _, rest = spec.partition(":")
    if wanted != name:
        return
    nth, _, action = rest.partition(":")
    hits = _hits[name] = _hits.get(name, 0) + 1
    if hits != (int(nth) if nth else 1):
        return
    marker = os.environ.get(MARKER_ENV)
    if marker:
        with open(marker, "a") as f:
            f.write(f"{name} {hits} {os.getpid()}\n")
            f.flush()
            os.fsync(f.fileno())
    if (action or "kill") == "raise":
        raise FaultInjected(f"fault point {name} (hit {hits})")
    os.kill(os.getpid(), signal.SIGKILL)
