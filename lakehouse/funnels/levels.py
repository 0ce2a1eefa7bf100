"""The Polars funnel computation (a user's furthest level): vectorised, one pass of whole-column operations per step.

**Window mode** replicates ClickHouse's ``windowFunnel(window)`` (default options)
exactly. ClickHouse keeps, per user, an entry ``(timestamp, step)`` for every event and
every step the event matches, sorts the entries by ``(timestamp, step)``, and walks them
keeping, per level ``k``, the first timestamp of the latest chain that reached ``k``:
a step-1 entry (re)starts level 1 with its own timestamp; a step-``k`` entry extends the
level-``k-1`` chain when one exists and ``timestamp <= first + window``, carrying
``first``. The user's level is the highest level ever set.

Here that walk is a forward fill: sort the entries by ``(group, user, timestamp, step)``;
the level-``k`` state at each row is the last value of "``first`` where a chain reached
``k`` on this row", forward-filled, with a sentinel written on each user's first row so
nothing leaks from one user to the next. One fill per level, no Python loop over events.

**Strict mode** walks *all* the user's events in ``(client_ts, event_id)`` order. A chain
may pass from step ``k`` to step ``k+1`` only if every event strictly between them is a
step-``k+1`` event (``event_type`` equal to step ``k+1``); any other event of the user in
between breaks it. Every step must be within ``window`` of the chain's first step. The
state of level ``k`` is the same forward fill, additionally reset on every event that is
not a step-``k+1`` event. The state kept is the latest start, which is also the best one
(see docs/analysis.md for the argument).

For both modes a user's **time to step k** is taken on the first row where the user
reaches level ``k``: that row's timestamp minus the first timestamp of the chain it
extends.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from lakehouse.errors import UsageError
from lakehouse.funnels.packed import SEQ
from lakehouse.funnels.spec import FunnelSpec, breakdown_expr

if TYPE_CHECKING:
    import polars as pl

_SENTINEL = -(2**63)  # "no open chain": below every epoch microsecond value
_HASH_SEED = 0x1CEB
_CHECK_SEED = 0x5EED
GROUP = "breakdown"
USER = "user_id"
KEY = "_key"  # what rows are sorted and grouped by: a hash of user_id, or user_id itself


HOLD = "_hold"


def _needed(spec: FunnelSpec) -> tuple[str, ...]:
    base = (USER, "event_type", "client_ts")
    return (*base, "event_id") if spec.mode == "strict" else base


def _base(
    lf: pl.LazyFrame, spec: FunnelSpec, grouped: bool, exact: bool, ids: bool = True
) -> pl.LazyFrame:
    """The columns the engine needs: [group,] user, key, [_hold,] event_type, _ts (epoch
    µs) [, event_id]. The key is a 64-bit hash of the user (sorting it is much cheaper than
    sorting strings) unless ``exact``; a hash shared by two users is detected later."""
    import polars as pl

    names = lf.collect_schema().names()
    missing = [c for c in _needed(spec) if c not in names]
    if missing:
        raise UsageError(f"the events frame lacks the column(s) {', '.join(missing)}")
    if spec.mode == "window":  # only step and excluded events matter: drop the rest first
        wanted = sorted({*spec.steps, *spec.excluded_types})
        lf = lf.filter(pl.col("event_type").cast(pl.String).is_in(wanted))
    user = pl.col(USER).cast(pl.String)
    cols = [
        # without ``ids`` (counting only) a second, independent hash stands for the user:
        # it still tells two users under one key apart, and sorts no strings
        user if ids else user.hash(_CHECK_SEED).alias(USER),
        (user if exact else hashed_user(user)).alias(KEY),
        pl.col("event_type").cast(pl.String),
        pl.col("client_ts").dt.epoch("us").alias("_ts"),
    ]
    if spec.hold is not None:
        cols.append(breakdown_expr(spec.hold, names, what="hold").alias(HOLD))
    if spec.mode == "strict":
        cols.append(pl.col("event_id").cast(pl.String))
    if grouped:
        assert spec.breakdown is not None
        cols.insert(0, breakdown_expr(spec.breakdown, names).alias(GROUP))
    return lf.select(cols)


def hashed_user(user: pl.Expr) -> pl.Expr:
    """The 64-bit hash rows are sorted by (collisions are detected, then redone exactly)."""
    return user.hash(_HASH_SEED)


def _keys(grouped: bool, spec: FunnelSpec | None = None) -> list[str]:
    """What a sequence is partitioned by: [group,] user key [, held value]."""
    keys = [GROUP, KEY] if grouped else [KEY]
    if spec is not None and spec.hold is not None:
        keys.append(HOLD)
    return keys


def _marks(grouped: bool, spec: FunnelSpec) -> dict[str, pl.Expr]:
    """``_start``: the first row of a sequence (user, group, held value); ``_clash``: a
    row whose user differs from the previous row's under the same key (two users share a
    hash)."""
    import polars as pl

    change = pl.col(KEY).ne_missing(pl.col(KEY).shift(1))
    for other in _keys(grouped, spec):
        if other != KEY:
            change = change | pl.col(other).ne_missing(pl.col(other).shift(1))
    start = change.fill_null(True)
    first_of_key = pl.col(KEY).ne_missing(pl.col(KEY).shift(1)).fill_null(True)
    if grouped:
        first_of_key = first_of_key | pl.col(GROUP).ne_missing(pl.col(GROUP).shift(1)).fill_null(
            True
        )
    clash = ~first_of_key & pl.col(USER).ne_missing(pl.col(USER).shift(1)).fill_null(False)
    return {"_start": start, "_clash": clash}


def _window_entries(lf: pl.LazyFrame, spec: FunnelSpec, grouped: bool) -> pl.LazyFrame:
    """Entries ``(keys, user, _ts, _idx)``, unsorted: one per event and matching step
    (``_idx`` its 0-based index), plus one per excluded event (``_idx`` negative: the
    excluded type's position in ``spec.excluded_types`` minus their number, so that
    ``(_ts, _idx)`` order puts them first among the entries of their timestamp)."""
    import polars as pl

    if len(set(spec.steps)) == len(spec.steps):  # one entry per event: a lookup, no join
        entries = lf.with_columns(
            _idx=pl.col("event_type").replace_strict(
                list(spec.steps), list(range(len(spec.steps))), default=None, return_dtype=pl.Int32
            )
        ).filter(pl.col("_idx").is_not_null())
    else:  # a repeated name: one entry per matching step
        steps = pl.LazyFrame(
            {"event_type": list(spec.steps), "_idx": list(range(len(spec.steps)))},
            schema={"event_type": pl.String, "_idx": pl.Int32},
        )
        entries = lf.filter(pl.col("event_type").is_in(sorted(set(spec.steps)))).join(
            steps, on="event_type", how="inner"
        )
    if spec.exclusions:
        types = spec.excluded_types
        excluded = lf.filter(pl.col("event_type").is_in(types)).with_columns(
            _idx=pl.col("event_type").replace_strict(
                list(types), [_excluded_idx(spec, t) for t in types], return_dtype=pl.Int32
            )
        )
        entries = pl.concat([entries, excluded], how="vertical_relaxed")
    return entries.drop("event_type")


def _excluded_idx(spec: FunnelSpec, event_type: str) -> int:
    """The (negative) ``_idx`` of an excluded event type's entries."""
    return spec.excluded_types.index(event_type) - len(spec.excluded_types)


def _window_rows(lf: pl.LazyFrame, spec: FunnelSpec, grouped: bool) -> pl.LazyFrame:
    """The entries of :func:`_window_entries`, sorted by ``(keys, _ts, _idx)``, marked."""
    entries = _window_entries(lf, spec, grouped)
    low = len(spec.excluded_types)
    return _sorted_entries(
        entries, _keys(grouped, spec), low, low + len(spec.steps) - 1
    ).with_columns(**_marks(grouped, spec))


def _sorted_entries(entries: pl.LazyFrame, keys: list[str], low: int, top: int) -> pl.LazyFrame:
    """``entries`` sorted by ``(*keys, _ts, _idx)``, as two single-purpose sorts (a
    multi-column sort was most of the funnel's time): first by one int64 that orders
    ``(_ts, _idx)`` — ``_ts`` shifted left by the bits ``_idx + low`` (0 .. ``top``)
    needs — then a stable sort by the keys. The shift cannot overflow for any time of
    years 1-9999 (|µs| < 2**58) while ``top`` fits 5 bits; longer funnels sort the two
    columns."""
    import polars as pl

    bits = top.bit_length()
    if bits <= 5:
        by_time = entries.sort(pl.col("_ts") * (1 << bits) + (pl.col("_idx") + low))
    else:
        by_time = entries.sort(["_ts", "_idx"])
    return by_time.sort(keys, maintain_order=True)


def _reset(spec: FunnelSpec, step: int) -> pl.Expr | None:
    """True on the excluded entries that close the chains at ``step`` (1-based)."""
    import polars as pl

    types = spec.excluded_after(step)
    return pl.col("_idx").is_in([_excluded_idx(spec, t) for t in types]) if types else None


def _typed(step: str) -> pl.Expr:
    import polars as pl

    return pl.col("event_type") == step


def _window_levels(frame: pl.LazyFrame, spec: FunnelSpec) -> pl.LazyFrame:
    """The level states over sorted, marked entries (``_start`` on each sequence's first)."""
    import polars as pl

    frame = frame.with_columns(_n0=pl.col("_idx") == 0)
    first = pl.col("_ts")
    for k in range(len(spec.steps) - 1):
        closed = pl.col("_start")
        reset = _reset(spec, k + 1)
        if reset is not None:
            closed = closed | reset
        frame = frame.with_columns(
            (
                pl.when(pl.col(f"_n{k}"))
                .then(first)
                .when(closed)
                .then(pl.lit(_SENTINEL, pl.Int64))
                .otherwise(None)
                .forward_fill()
            ).alias(f"_f{k + 1}")
        )
        first = pl.col(f"_f{k + 1}")
        frame = frame.with_columns(
            (
                (pl.col("_idx") == k + 1)
                & (first > _SENTINEL)
                & (pl.col("_ts") <= first + spec.window_us_for(k + 2))
            ).alias(f"_n{k + 1}")
        )
    return frame


def _strict_rows(lf: pl.LazyFrame, spec: FunnelSpec, grouped: bool) -> pl.LazyFrame:
    """All events sorted by ``(keys, _ts, event_id)``, marked."""
    return lf.sort([*_keys(grouped, spec), "_ts", "event_id"]).with_columns(**_marks(grouped, spec))


def _strict_levels(
    frame: pl.LazyFrame, spec: FunnelSpec, is_type: Callable[[str], pl.Expr]
) -> pl.LazyFrame:
    """The level states over sorted, marked events; ``is_type(step)``: the events of
    that step's type. Excluded types are never steps, so in strict mode an excluded event
    already breaks every chain it falls inside: exclusions change nothing here."""
    import polars as pl

    frame = frame.with_columns(_n0=is_type(spec.steps[0]))
    first = pl.col("_ts")
    for k in range(len(spec.steps) - 1):
        is_next = is_type(spec.steps[k + 1])
        state = (
            pl.when(pl.col(f"_n{k}"))
            .then(first)
            .when(pl.col("_start") | ~is_next)
            .then(pl.lit(_SENTINEL, pl.Int64))
            .otherwise(None)
            .forward_fill()
        )
        # the level-k chain still open on the previous row (same sequence: not a first row)
        frame = frame.with_columns(state.shift(1).alias(f"_f{k + 1}"))
        first = pl.col(f"_f{k + 1}")
        frame = frame.with_columns(
            (
                is_next
                & ~pl.col("_start")
                & (first > _SENTINEL)
                & (pl.col("_ts") <= first + spec.window_us_for(k + 2))
            )
            .fill_null(False)
            .alias(f"_n{k + 1}")
        )
    return frame


def _reach(
    frame: pl.LazyFrame, spec: FunnelSpec, grouped: bool, sequences: pl.DataFrame | None = None
) -> pl.LazyFrame:
    """Per user: ``us_to_step_k``, the µs from the chain's first step to step k on the
    first row where the user reached k (null if never), ``level`` (steps reached), and
    ``_clash`` (true: the user shared a hash key with another; the result is void).

    With a held column the sequences are per (user, held value); a user's time to step k
    is then the one of the sequence that reached k first in client time (on a tie, the
    shorter time).

    ``sequences``: the rows are numbered sequences (column ``_seq``, from
    :func:`lakehouse.funnels.packed.packed_order`) and this frame holds their keys."""
    import polars as pl

    k_steps = len(spec.steps)
    names = [f"us_to_step_{k}" for k in range(1, k_steps + 1)]
    # masked before subtracting: the sentinel never enters arithmetic
    reach = [
        (
            pl.when(pl.col(f"_n{k}")).then(pl.col("_ts"))
            - pl.when(pl.col(f"_n{k}")).then(pl.col("_ts") if k == 0 else pl.col(f"_f{k}"))
        ).alias(names[k])
        for k in range(k_steps)
    ]
    held = spec.hold is not None
    at = [pl.when(pl.col(f"_n{k}")).then(pl.col("_ts")).alias(f"_at{k}") for k in range(k_steps)]
    out = [GROUP, USER] if grouped else [USER]
    by = _keys(grouped, spec) if sequences is None else [SEQ]
    user = [USER] if sequences is None else []
    per_sequence = (
        frame.filter(pl.any_horizontal(pl.col(f"_n{k}") for k in range(k_steps)) | pl.col("_clash"))
        .select(*by, *user, "_clash", *reach, *(at if held else []))
        .group_by(by)
        # rows keep their order inside a group: the first non-null is the earliest reach
        .agg(
            *(pl.col(c).first() for c in user),
            pl.col("_clash").any(),
            *(pl.col(n).drop_nulls().first() for n in names),
            *(pl.col(f"_at{k}").drop_nulls().first() for k in range(k_steps) if held),
        )
    )
    if sequences is not None:
        per_sequence = per_sequence.join(sequences.lazy(), on=SEQ).drop(SEQ)
    if held:
        per_sequence = per_sequence.group_by(_keys(grouped)).agg(
            pl.col(USER).first(),
            pl.col("_clash").any() | (pl.col(USER).n_unique() > 1),
            *(
                pl.col(n).sort_by([pl.col(f"_at{k}"), pl.col(n)], nulls_last=True).first()
                for k, n in enumerate(names)
            ),
        )
    return (
        per_sequence.with_columns(
            level=pl.sum_horizontal(pl.col(n).is_not_null() for n in names).cast(pl.Int64)
        )
        .filter((pl.col("level") > 0) | pl.col("_clash"))
        .select(*out, "level", *names, "_clash")
    )


def levels_for(
    lf: pl.LazyFrame, spec: FunnelSpec, *, grouped: bool, exact: bool = False, ids: bool = True
) -> pl.LazyFrame:
    """Per user (and breakdown value when ``grouped``, column ``breakdown`` first) who
    reached step 1: ``level``, ``us_to_step_1 .. us_to_step_K`` and ``_clash``."""
    base = _base(lf, spec, grouped, exact, ids)
    if spec.mode == "strict":
        return _reach(
            _strict_levels(_strict_rows(base, spec, grouped), spec, _typed), spec, grouped
        )
    return _reach(_window_levels(_window_rows(base, spec, grouped), spec), spec, grouped)
