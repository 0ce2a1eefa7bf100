"""Compaction's row order, ``(client_ts, event_id)``, against Python's own sort."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from maintenance.rewrite import sort_events

BASE = datetime(2024, 5, 1, tzinfo=UTC)


@pytest.mark.parametrize("spread_us", [1, 5, 10**9])  # many ties, some, (almost) none
@pytest.mark.parametrize("seed", range(4))
def test_rows_come_in_client_ts_then_event_id_order(spread_us: int, seed: int) -> None:
    rng = random.Random(seed)
    rows = [
        (BASE + timedelta(microseconds=rng.randrange(spread_us)), f"e{rng.randrange(10**6):06d}", i)
        for i in range(500)
    ]
    frame = pl.DataFrame(
        rows,
        schema={"client_ts": pl.Datetime("us", "UTC"), "event_id": pl.String, "n": pl.Int64},
        orient="row",
    )
    got = sort_events(frame.sample(fraction=1.0, shuffle=True, seed=seed))
    expected = sorted(rows, key=lambda r: (r[0], r[1]))
    assert [(r[0], r[1]) for r in got.iter_rows()] == [(r[0], r[1]) for r in expected]
    assert sorted(got["n"].to_list()) == list(range(500))  # every row once


def test_equal_timestamps_next_to_each_other_are_ordered_by_event_id() -> None:
    ts = [BASE + timedelta(seconds=s) for s in (3, 1, 2, 1, 3)]
    frame = pl.DataFrame({"client_ts": ts, "event_id": ["b", "z", "m", "a", "a"]})
    got = sort_events(frame)
    assert got["event_id"].to_list() == ["a", "z", "m", "a", "b"]


@pytest.mark.parametrize("spread_us", [3, 10**9])
def test_only_the_rows_kept_come_back_in_order(spread_us: int) -> None:
    rng = random.Random(spread_us)
    rows = [
        (BASE + timedelta(microseconds=rng.randrange(spread_us)), f"e{i:04d}", i)
        for i in range(300)
    ]
    rng.shuffle(rows)
    frame = pl.DataFrame(
        rows,
        schema={"client_ts": pl.Datetime("us", "UTC"), "event_id": pl.String, "n": pl.Int64},
        orient="row",
    )
    keep = np.array([rng.random() < 0.7 for _ in rows])
    got = sort_events(frame, keep)
    expected = sorted((r for r, k in zip(rows, keep, strict=True) if k), key=lambda r: (r[0], r[1]))
    assert got.rows() == expected
