"""Ordering funnel entries by one sort of packed 64-bit integers (the Polars engine's fast path).

The engine walks each sequence's entries (a sequence: a user, or a user and breakdown
value, or a user and held value) in ``(timestamp, code)`` order, where ``code`` orders the
entries of one timestamp. Sorting the rows of a frame by ``(sequence, timestamp, code)``
was most of the funnel's time; here the three are packed into one integer per entry and
only those integers are sorted (numpy sorts a plain int64 array several times faster than
any row sort), then unpacked:

* the sequence becomes a dense number ``0 .. S-1``: the rank of its 64-bit hash among
  the distinct hashes;
* the timestamp becomes its offset from the earliest one, or, when that needs too many
  bits, its position among the distinct timestamps;
* ``code`` (non-negative, small) takes the low bits.

When the three still need more than 63 bits (or a timestamp is null), :func:`packed_order`
returns None and the caller sorts rows instead. Entries that share a sequence and a
timestamp can be ordered by another column (strict mode's ``event_id``). Two sequences sharing a hash are reported (``clash``): the
caller then redoes the work with exact keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

SEQ = "_seq"  # the dense sequence number of an ordered entry
_BITS = 63  # a non-negative int64


@dataclass(frozen=True)
class Ordered:
    """Entries in ``(sequence, timestamp, code)`` order: columns ``_seq``, the timestamp
    and code columns (named as given), ``_start`` (the first entry of its sequence); ``sequences``: one row per
    sequence number (column ``_seq``) with the carried columns' values; ``clash``: two
    sequences shared a hash (the order is then void)."""

    rows: pl.DataFrame
    sequences: pl.DataFrame
    clash: bool


def _dense(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each value's position among the sorted distinct ``values``, and one row index per
    distinct value (its first row in sorted order). A scatter over the sorted order, and
    the later work reads the rows in their own order (gathering rows along the order
    instead measured slower)."""
    import numpy as np

    order, ordered = _sorted_order(values)
    new = np.empty(len(values), dtype=bool)
    new[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=new[1:])
    numbers = np.empty(len(values), dtype=np.int64)
    numbers[order] = np.cumsum(new) - 1
    return numbers, order[new]


def _sorted_order(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An order that sorts ``values`` (64-bit), and the sorted values. Not an argsort
    (4x slower on 6 M values): the values' high bits with the row number in the low bits
    are sorted as plain integers. Rows whose values share the high bits but differ below
    come out by row number, not by value; those few runs are sorted again by value."""
    import numpy as np

    n = len(values)
    bits = max(1, (n - 1).bit_length())
    signed = np.issubdtype(values.dtype, np.signedinteger)
    low = np.uint64((1 << bits) - 1)

    def high_bits(of: np.ndarray) -> np.ndarray:
        wide = of.astype(np.uint64)  # signed: the sign bit flipped keeps the order
        if signed:
            wide ^= np.uint64(1 << 63)
        wide &= ~low
        return wide

    # in place where it can be: each new array of millions of rows costs page faults
    packed = high_bits(values)
    packed |= np.arange(n, dtype=np.uint64)
    packed.sort()
    packed &= low
    order = packed.view(np.int64)
    ordered = values[order]
    if len(values) > 1:
        wrong = ordered[1:] < ordered[:-1]
        if wrong.any():
            high = high_bits(ordered)  # the sorted keys' high bits, row by row
            rows = np.flatnonzero(np.isin(high, np.unique(high[1:][wrong])))
            again = np.argsort(ordered[rows], kind="stable")
            order[rows] = order[rows][again]
            ordered[rows] = ordered[rows][again]
    return order, ordered


def packed_order(
    entries: pl.DataFrame,
    *,
    hash_of: str,
    ts: str,
    code: str,
    carry: list[str],
    tie: str | None = None,
) -> Ordered | None:
    """Order ``entries`` (a sequence hash ``hash_of`` (UInt64), timestamps ``ts`` (Int64),
    ``code`` (non-negative integers) and the ``carry`` columns, constant within a sequence)
    by one packed sort; None when the packed key would need more than 63 bits.

    ``tie``: entries of one sequence and timestamp are ordered by this column (then by
    ``code``) instead of by ``code``; those few entries are sorted again as rows."""
    import numpy as np
    import polars as pl

    if entries.height == 0:
        rows = pl.DataFrame(
            schema={SEQ: pl.Int64, ts: pl.Int64, code: pl.Int64, "_start": pl.Boolean}
        )
        sequences = entries.select(carry).with_columns(pl.lit(0, pl.Int64).alias(SEQ))
        return Ordered(rows=rows, sequences=sequences, clash=False)
    if entries[ts].null_count() or entries[hash_of].null_count():
        return None  # rows sort nulls; these integers cannot hold them
    seq, one = _dense(entries[hash_of].to_numpy())
    codes = entries[code].to_numpy().astype(np.int64, copy=False)
    times = entries[ts].to_numpy()
    low = int(times.min())
    offsets = times - low  # (arrays of millions of rows: each new one costs page faults,
    # so the work below is done in place where it can be)
    span = int(offsets.max())
    code_bits = int(codes.max()).bit_length()
    seq_bits = (len(one) - 1).bit_length()
    stamps: np.ndarray | None = None
    if seq_bits + span.bit_length() + code_bits > _BITS:
        offsets, firsts = _dense(times)
        stamps = times[firsts]
        span = len(stamps) - 1
    time_bits = span.bit_length()
    if seq_bits + time_bits + code_bits > _BITS:
        return None
    moment = seq.astype(np.int64) << time_bits
    moment |= offsets.astype(np.int64, copy=False)
    packed = moment << code_bits
    packed |= codes
    packed.sort()
    code_sorted = packed & ((1 << code_bits) - 1)
    if tie is not None:
        _order_ties(entries.select(tie), moment, codes, packed >> code_bits, code_sorted)
    del moment, offsets
    seq_sorted = packed >> (time_bits + code_bits)
    time_sorted = packed
    time_sorted >>= code_bits  # (the packed keys are not needed any more)
    time_sorted &= (1 << time_bits) - 1
    start = np.empty(len(seq_sorted), dtype=bool)
    start[0] = True
    np.not_equal(seq_sorted[1:], seq_sorted[:-1], out=start[1:])
    if stamps is None:
        time_sorted += low
    rows = pl.DataFrame(
        {
            SEQ: pl.Series(SEQ, seq_sorted).set_sorted(),
            ts: time_sorted if stamps is None else stamps[time_sorted],
            code: code_sorted,
            "_start": start,
        }
    )
    # one entry per sequence stands for it (any: the carried values are constant)
    numbers = pl.Series(SEQ, np.arange(len(one))).set_sorted()
    sequences = entries.select(carry)[one].with_columns(numbers) if carry else numbers.to_frame()
    clash = _clashes(entries, sequences, seq, carry)
    return Ordered(rows=rows, sequences=sequences, clash=clash)


def _order_ties(
    tie: pl.DataFrame,
    moment: np.ndarray,
    codes: np.ndarray,
    moment_sorted: np.ndarray,
    code_sorted: np.ndarray,
) -> None:
    """Rewrite ``code_sorted`` where two or more entries share a moment (sequence and
    timestamp): there the codes follow the ``tie`` column's order. Each run of one
    moment in the sorted entries holds exactly that moment's entries, so the tied entries
    sorted by ``(moment, tie, code)`` fill the runs in order."""
    import numpy as np
    import polars as pl

    same = moment_sorted[1:] == moment_sorted[:-1]
    if not same.any():
        return
    in_run = np.zeros(len(moment_sorted), dtype=bool)
    in_run[1:] |= same
    in_run[:-1] |= same
    tied = pl.Series(np.unique(moment_sorted[in_run]))
    picked = pl.Series(moment).is_in(tied.implode()).to_numpy()
    name = tie.columns[0]
    rows = tie.filter(pl.Series(picked)).with_columns(
        pl.Series("_moment", moment[picked]), pl.Series("_code", codes[picked])
    )
    code_sorted[in_run] = rows.sort(["_moment", name, "_code"])["_code"].to_numpy()


def _clashes(
    entries: pl.DataFrame, sequences: pl.DataFrame, seq: np.ndarray, carry: list[str]
) -> bool:
    """True when some entry's carried values differ from those of its sequence's
    representative: two sequences share a hash."""
    import polars as pl

    if not carry:
        return False
    expected = sequences.select(carry)[pl.Series(seq)]
    return any(bool(entries[c].ne_missing(expected[c]).any()) for c in carry)
