"""Rewrite groups ahead of their commit: a bounded number of groups in flight at once.

Reading, deduplicating, sorting and writing a group spend most of their time in Arrow,
Parquet and Polars code that releases the GIL, so while one group is being written the
next one is already being read. At most ``depth`` groups are being rewritten at once, and
a new one starts as soon as any of them ends (not only the oldest): memory stays bounded
by a few groups, whatever the run's size; a group that ended ahead of its turn holds only
the description of its new files. Results come back in plan order.
"""

from __future__ import annotations

import contextlib
import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from lakehouse.errors import LakehouseError
from maintenance.plan import RewriteGroup
from maintenance.rewrite import RewrittenGroup

log = logging.getLogger(__name__)

# Groups in flight: on 2 cores three keep both busy while one group is in a single-threaded
# phase (its Parquet write) and its Python parts wait for the GIL (measured on
# bench_compaction.py: 1.03-1.09 M events/s with two, 1.11-1.16 M with three).
DEFAULT_DEPTH = 3


@dataclass(frozen=True)
class Rewritten:
    """A group and what its rewrite gave: the new files, or the error it raised."""

    group: RewriteGroup
    output: RewrittenGroup | None
    error: Exception | None = None


class RewritePipeline:
    """Iterate over ``groups`` rewritten by ``rewrite``, ``depth`` at a time, in order.

    ``should_stop`` is asked before each group is started; once it says stop, no group
    is started any more, the groups in flight finish and are handed back, and
    :attr:`stopped` is set.
    """

    def __init__(
        self,
        groups: Iterable[RewriteGroup],
        rewrite: Callable[[RewriteGroup], RewrittenGroup],
        *,
        depth: int = DEFAULT_DEPTH,
        should_stop: Callable[[], bool] | None = None,
        discard: Callable[[RewrittenGroup], None] | None = None,
    ) -> None:
        self._groups = iter(groups)
        self._rewrite = rewrite
        self._depth = max(1, depth)
        self._should_stop = should_stop
        self._discard = discard
        self.stopped = False

    def _start(
        self,
        pool: ThreadPoolExecutor,
        pending: deque[tuple[RewriteGroup, Future[RewrittenGroup]]],
    ) -> None:
        while sum(not f.done() for _, f in pending) < self._depth and not self.stopped:
            group = next(self._groups, None)
            if group is None:
                return
            if self._should_stop is not None and self._should_stop():
                self.stopped = True
                return
            pending.append((group, pool.submit(self._rewrite, group)))

    def __iter__(self) -> Iterator[Rewritten]:
        pending: deque[tuple[RewriteGroup, Future[RewrittenGroup]]] = deque()
        with ThreadPoolExecutor(self._depth, thread_name_prefix="compaction") as pool:
            try:
                self._start(pool, pending)
                while pending:
                    if not pending[0][1].done():  # start another as soon as any ends
                        wait([f for _, f in pending if not f.done()], return_when=FIRST_COMPLETED)
                        self._start(pool, pending)
                        continue
                    group, future = pending.popleft()
                    try:
                        done = Rewritten(group, future.result())
                    except Exception as exc:  # reported per group, never swallowed
                        log.error(
                            "group %s failed: %s: %s",
                            group.group_id,
                            type(exc).__name__,
                            exc,
                            # ours say what happened (an outage, say): no traceback for them
                            exc_info=not isinstance(exc, LakehouseError),
                        )
                        done = Rewritten(group, None, exc)
                    self._start(pool, pending)
                    yield done
            finally:
                # Abandoned early (an error in the caller): the groups in flight end, and
                # what they wrote (never to be committed) is discarded.
                for _, future in pending:
                    if future.cancel() or self._discard is None:
                        continue
                    # a rewrite that raised removed its own files (rewrite_group)
                    with contextlib.suppress(Exception):
                        self._discard(future.result())
