"""The ordered view: Polars on real tables against a plain Python computation, and the
view's SQL text run by DuckDB against the same rows."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import duckdb
import polars as pl
import pytest

import lakehouse
from lakehouse.errors import UsageError
from lakehouse.read import ORDERED_VIEW_COLUMNS, ordered_view_sql, with_order
from lakehouse.settings import Settings
from tests.analysis.conftest import BASE, ev, write

US = timedelta(microseconds=1)


def tricky_events(n: int = 400, seed: int = 5) -> list[dict[str, Any]]:
    """Users with equal client times (ties broken by event_id), sub-millisecond gaps
    across and within millisecond boundaries, and arrival order unrelated to time."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        at = timedelta(milliseconds=rng.randrange(0, 5_000)) + rng.choice((0, 100, 900, 999)) * US
        if rng.random() < 0.2:
            at = timedelta(seconds=1)  # many events at one instant
        rows.append(
            ev(f"e{rng.randrange(10**6):06d}-{i}", f"u{rng.randrange(7)}", rng.choice("abc"), at)
        )
    rng.shuffle(rows)
    return rows


def python_ordered(rows: list[dict[str, Any]]) -> list[tuple[str, int, str | None, int | None]]:
    """(event_id, event_seq, prev_event_type, millis_since_prev), straight from the
    definition: per user, sort by (client_ts, event_id); millis = difference of the
    timestamps truncated to milliseconds."""
    from datetime import datetime

    def micros(text: str) -> int:
        ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return (ts - BASE) // US + int(BASE.timestamp()) * 1_000_000

    by_user: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_user.setdefault(r["user_id"], []).append(r)
    out = []
    for events in by_user.values():
        events.sort(key=lambda r: (micros(r["client_ts"]), r["event_id"]))
        prev = None
        for seq, r in enumerate(events, start=1):
            millis = (
                None
                if prev is None
                else micros(r["client_ts"]) // 1000 - micros(prev["client_ts"]) // 1000
            )
            out.append((r["event_id"], seq, None if prev is None else prev["event_type"], millis))
            prev = r
    return sorted(out)


def _rows(frame: pl.DataFrame) -> list[tuple[str, int, str | None, int | None]]:
    return sorted(frame.select("event_id", *ORDERED_VIEW_COLUMNS).iter_rows())


def test_ordered_view_matches_python(settings: Settings) -> None:
    rows = tricky_events()
    write(settings, rows)
    frame = lakehouse.ordered(settings).collect()
    assert frame.height == len(rows)
    assert frame.schema["event_seq"] == pl.Int64
    assert frame.schema["millis_since_prev"] == pl.Int64
    assert frame.schema["prev_event_type"] == pl.String
    expected = python_ordered(rows)
    assert _rows(frame) == expected
    # rows come out by (user_id, client_ts, event_id)
    keys = frame.select("user_id", "client_ts", "event_id").rows()
    assert keys == sorted(keys)
    # the sub-millisecond cases are really there: a 0.2 ms gap across a boundary is 1
    assert any(m == 0 for _, _, _, m in expected) and any(m == 1 for _, _, _, m in expected)


def test_ordered_range_keeps_whole_history_numbering(sqlite_settings: Settings) -> None:
    rows = [ev(f"e{i:02d}", "u1", "abc"[i % 3], i * timedelta(minutes=30)) for i in range(10)]
    write(sqlite_settings, rows)
    full = lakehouse.ordered(sqlite_settings).collect()
    part = lakehouse.ordered(
        sqlite_settings, start=BASE + timedelta(hours=2), end=BASE + timedelta(hours=4)
    ).collect()
    assert part["event_id"].to_list() == ["e04", "e05", "e06", "e07"]
    assert part["event_seq"].to_list() == [5, 6, 7, 8]  # counts the earlier events
    assert part["prev_event_type"].to_list() == ["a", "b", "c", "a"]
    assert part["millis_since_prev"].to_list() == [1_800_000] * 4
    assert _rows(part) == [r for r in _rows(full) if r[0] in set(part["event_id"])]
    # numbering within a range instead
    local = with_order(lakehouse.events(sqlite_settings, start=BASE + timedelta(hours=2))).collect()
    assert local["event_seq"].to_list()[:2] == [1, 2]
    assert local["prev_event_type"][0] is None


def test_view_sql_in_duckdb_gives_the_same_rows() -> None:
    """The SQL text is standard enough for DuckDB, whose date_diff('millisecond', ...) also
    compares truncated milliseconds, like Trino's: the rows must equal ours."""
    rows = tricky_events(300, seed=11)
    events = pl.DataFrame(rows).with_columns(
        pl.col("client_ts", "server_ts").str.to_datetime(time_zone="UTC").dt.cast_time_unit("us")
    )
    con = duckdb.connect()
    con.register("events", events.to_arrow())
    sql = ordered_view_sql('"events"')
    got = pl.from_arrow(con.sql(sql).to_arrow_table())
    assert isinstance(got, pl.DataFrame)
    assert _rows(got) == _rows(with_order(events.lazy()).collect()) == python_ordered(rows)


def test_view_sql_text() -> None:
    sql = ordered_view_sql('"lakehouse"."analytics"."events"')
    assert 'FROM "lakehouse"."analytics"."events" AS e' in sql
    assert sql.count("OVER (PARTITION BY user_id ORDER BY client_ts, event_id)") == 3
    for column in ORDERED_VIEW_COLUMNS:
        assert f"AS {column}" in sql
    assert lakehouse.ORDERED_VIEW_SQL.format(table="t") == ordered_view_sql("t")
    for bad in ("", "t; DROP TABLE x", "t -- c", "t /* c */"):
        with pytest.raises(UsageError):
            ordered_view_sql(bad)


def test_with_order_needs_the_key_columns() -> None:
    with pytest.raises(UsageError, match="event_id"):
        with_order(pl.LazyFrame({"user_id": ["u"], "client_ts": [1], "event_type": ["a"]}))
