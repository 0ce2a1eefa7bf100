"""Shared helpers for benchmarks: synthetic events, timing, fresh lakehouse homes."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from lakehouse.settings import Settings

BASE = datetime(2024, 5, 1, tzinfo=UTC)
TS = pa.timestamp("us", tz="UTC")


def synthetic_events(n: int, *, hours: int = 24, seed: int = 1, offset: int = 0) -> pa.Table:
    """``n`` events with the 7 core columns over ``hours`` hours, in arrival order
    (client timestamps jittered, so the writer has real sorting to do)."""
    rng = np.random.default_rng(seed)
    span_us = hours * 3600 * 1_000_000
    base_us = int(BASE.timestamp() * 1_000_000)
    arrival = np.sort(rng.integers(0, span_us, n))
    client = arrival - rng.integers(0, 30_000_000, n)  # up to 30 s of jitter
    client = np.clip(client, 0, span_us - 1) + base_us
    server = arrival + base_us + rng.integers(100_000, 5_000_000, n)
    ids = np.arange(offset, offset + n)
    users = rng.integers(0, max(1, n // 50), n)
    kinds = np.array(["app_open", "view_product", "add_to_cart", "checkout", "purchase", "search"])
    return pa.table(
        {
            "event_id": pa.array(np.char.add("ev-", ids.astype(str))),
            "user_id": pa.array(np.char.add("user-", users.astype(str))),
            "event_type": pa.array(kinds[rng.integers(0, len(kinds), n)]),
            "client_ts": pa.array(client, pa.int64()).cast(TS),
            "server_ts": pa.array(server, pa.int64()).cast(TS),
            "session_id": pa.array(np.char.add("s-", (users * 7 + ids // 40).astype(str))),
            "properties": pa.array(np.char.add('{"page":"/p/', (ids % 97).astype(str)) + '"}'),
        }
    )


@contextmanager
def fresh_home(prefix: str = "bench-") -> Iterator[Settings]:
    root = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield Settings.from_env(env={}, home=str(root))
    finally:
        shutil.rmtree(root, ignore_errors=True)


def timed(fn: Callable[[], Any], repeat: int = 1) -> tuple[float, Any]:
    """Best wall time of ``repeat`` runs, and the last result."""
    best = float("inf")
    result = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_info() -> str:
    return f"{os.cpu_count()} cores"
