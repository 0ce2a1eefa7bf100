"""The packed-integer ordering of funnel entries against Python's own sort of the same
``(hash, timestamp, code)`` tuples."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lakehouse.funnels.packed import SEQ, packed_order

_HASHES = (0, 1, 7, 2**40 + 3, 2**63 - 1, 2**63, 2**64 - 1)
_NARROW = st.integers(1_714_521_600_000_000, 1_714_521_600_000_000 + 10)
# years 0001..9999 in epoch µs: offsets from the earliest would need 59 bits
_WIDE = st.integers(-62_135_596_800_000_000, 253_402_300_799_999_999)
_entry = st.tuples(st.sampled_from(_HASHES), st.one_of(_NARROW, _WIDE), st.integers(0, 5))


def _frame(entries: list[tuple[int, int, int]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "h": [h for h, _, _ in entries],
            "ts": [t for _, t, _ in entries],
            "code": [c for _, _, c in entries],
            "user": [f"user-{h}" for h, _, _ in entries],
        },
        schema={"h": pl.UInt64, "ts": pl.Int64, "code": pl.Int64, "user": pl.String},
    )


def _expected(entries: list[tuple[int, int, int]]) -> list[tuple[int, int, int, bool]]:
    """Python's sort; the sequence number is the hash's rank among the distinct hashes."""
    rank = {h: n for n, h in enumerate(sorted({h for h, _, _ in entries}))}
    out, previous = [], None
    for h, ts, code in sorted(entries):
        out.append((rank[h], ts, code, h != previous))
        previous = h
    return out


@settings(max_examples=200, deadline=None)
@given(entries=st.lists(_entry, min_size=1, max_size=60))
def test_packed_order_is_the_sort_of_the_tuples(entries: list[tuple[int, int, int]]) -> None:
    got = packed_order(_frame(entries), hash_of="h", ts="ts", code="code", carry=["user"])
    assert got is not None
    assert list(got.rows.select(SEQ, "ts", "code", "_start").iter_rows()) == _expected(entries)
    distinct = sorted({h for h, _, _ in entries})
    assert got.sequences.sort(SEQ).rows() == [(f"user-{h}", n) for n, h in enumerate(distinct)]
    assert not got.clash


def test_times_too_far_apart_for_offsets_are_ranked() -> None:
    """64 sequences (6 bits), codes 0..7 (3 bits) and 9,000 years of µs (58 bits) do not
    fit 63 bits as offsets: the timestamps are replaced by their rank, and come back."""
    years = [-62_135_596_800_000_000, 0, 1, 253_402_300_799_999_999]
    entries = [(h * 2**57, years[(h + c) % 4] + c, c % 8) for h in range(64) for c in range(9)]
    got = packed_order(_frame(entries), hash_of="h", ts="ts", code="code", carry=["user"])
    assert got is not None
    assert list(got.rows.select(SEQ, "ts", "code", "_start").iter_rows()) == _expected(entries)


def test_keys_that_cannot_fit_63_bits_give_none() -> None:
    """Codes of 62 bits leave no room for two sequences and two timestamps."""
    entries = [(1, 10, 2**62), (2, 20, 0)]
    assert packed_order(_frame(entries), hash_of="h", ts="ts", code="code", carry=[]) is None


def test_a_null_timestamp_gives_none() -> None:
    df = _frame([(1, 10, 0), (2, 20, 1)]).with_columns(pl.Series("ts", [None, 20], pl.Int64))
    assert packed_order(df, hash_of="h", ts="ts", code="code", carry=["user"]) is None


def test_no_entries_give_no_rows() -> None:
    got = packed_order(_frame([]), hash_of="h", ts="ts", code="code", carry=["user"])
    assert got is not None and got.rows.height == 0 and got.sequences.height == 0


@pytest.mark.parametrize("carry", [["user"], []])
def test_two_sequences_under_one_hash_are_a_clash(carry: list[str]) -> None:
    df = _frame([(5, 1, 0), (5, 2, 1), (6, 3, 0)])
    df = df.with_columns(pl.Series("user", ["ann", "bob", "cid"]))
    got = packed_order(df, hash_of="h", ts="ts", code="code", carry=carry)
    assert got is not None
    # without a carried column there is nothing to tell the two apart
    assert got.clash is bool(carry)


@settings(max_examples=200, deadline=None)
@given(
    entries=st.lists(
        st.tuples(
            st.sampled_from(_HASHES[:3]),
            st.one_of(st.integers(0, 3), _WIDE),
            st.integers(0, 3),
            st.one_of(st.none(), st.sampled_from(["e1", "e2", "e10", "x"])),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_ties_follow_the_tie_column(entries: list[tuple[int, int, int, str | None]]) -> None:
    """Entries of one sequence and timestamp come in the tie column's order (nulls first),
    then the code's; all others as without it."""
    df = _frame([(h, t, c) for h, t, c, _ in entries]).with_columns(
        pl.Series("tie", [e for _, _, _, e in entries], dtype=pl.String)
    )
    got = packed_order(df, hash_of="h", ts="ts", code="code", carry=["user"], tie="tie")
    assert got is not None
    rank = {h: n for n, h in enumerate(sorted({h for h, _, _, _ in entries}))}
    ordered = sorted(entries, key=lambda e: (e[0], e[1], e[3] is not None, e[3] or "", e[2]))
    assert list(got.rows.select(SEQ, "ts", "code").iter_rows()) == [
        (rank[h], t, c) for h, t, c, _ in ordered
    ]


@pytest.mark.parametrize("dtype", [np.uint64, np.int64])
def test_values_sharing_high_bits_still_sort(dtype: type) -> None:
    """Values that differ only in the bits the row number takes (and negative ones) come
    out sorted: the same values, in the same order, as numpy's argsort gives."""
    from lakehouse.funnels.packed import _sorted_order

    rng = np.random.default_rng(3)
    pool = np.array([5, 6, 1_000, 2**40 + 1, 2**40 + 2, 2**62 + 9], dtype=np.int64)
    if dtype is np.int64:
        pool = np.concatenate([pool, -pool])
    values = rng.choice(pool, 5_000).astype(dtype)
    order, ordered = _sorted_order(values)
    assert sorted(order.tolist()) == list(range(len(values)))  # a permutation
    assert ordered.tolist() == values[order].tolist() == np.sort(values).tolist()
