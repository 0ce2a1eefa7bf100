"""Fold top-level fields into the ``properties`` JSON object text of each event.

Normalisation folds the fields that cannot be columns (nested values, names that are not
plain identifiers); schema evolution folds the new fields beyond ``LAKEHOUSE_MAX_COLUMNS``.
A folded key that the event's own properties already hold is kept as ``<key>__top_level``.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def to_json(value: object) -> str:
    return json.dumps(value, default=str, ensure_ascii=False, separators=(",", ":"))


def json_objects(table: pa.Table) -> pa.Array:
    """Encode each row of ``table`` (columns = keys) as JSON object text. Null values are
    left out (pyarrow fills keys other rows have with nulls); all-null rows give null."""
    import polars as pl

    if table.num_columns == 0:
        return pa.nulls(table.num_rows, pa.string())
    try:
        df = pl.from_arrow(table)
        assert isinstance(df, pl.DataFrame)
        fragments = [
            pl.when(pl.col(c).is_not_null()).then(
                pl.struct(pl.col(c))
                .struct.json_encode()
                .str.strip_prefix("{")
                .str.strip_suffix("}")
            )
            for c in df.columns
        ]
        body = pl.concat_str(fragments, separator=",", ignore_nulls=True)
        encoded = df.select(
            pl.when(body.str.len_bytes() > 0)
            .then(pl.concat_str([pl.lit("{"), body, pl.lit("}")]))
            .alias("j")
        )
        return pc.cast(encoded.to_series().to_arrow(), pa.string())
    except BaseException as exc:  # types polars cannot encode: take the slow, sure path
        # (polars reports some as a Rust panic, a BaseException)
        if isinstance(exc, (KeyboardInterrupt, SystemExit, GeneratorExit)):
            raise
        rows = [{k: v for k, v in r.items() if v is not None} for r in table.to_pylist()]
        return pa.array([to_json(r) if r else None for r in rows], pa.string())


def merge_texts(props: pa.Array, folded: pa.Array) -> pa.Array:
    """Each row's ``properties`` text with the folded fields' object merged in; a folded
    key the properties already hold is kept as ``<key>__top_level``."""
    merged: list[str | None] = []
    for p, f in zip(props.to_pylist(), folded.to_pylist(), strict=True):
        base = json.loads(f) if f else {}
        try:
            own = json.loads(p) if p else {}
        except ValueError:
            own = {"properties": p}
        if not isinstance(own, dict):
            own = {"properties": own}
        for key, value in base.items():
            own.setdefault(key if key not in own else f"{key}__top_level", value)
        merged.append(to_json(own) if own or p is not None else None)
    return pa.array(merged, pa.string())


def fold_into_properties(table: pa.Table, names: list[str]) -> pa.Table:
    """A normalised chunk with the columns ``names`` folded into its ``properties`` JSON
    text (the way fields that cannot be columns are folded) and dropped."""
    present = set(table.column_names)
    names = [n for n in names if n in present]
    if not names:
        return table
    wide = len(names) > _WIDE
    folded = _sparsejson_objects(table, names) if wide else json_objects(table.select(names))
    props = pc.cast(table.column("properties").combine_chunks(), pa.string())
    both = pc.and_(pc.is_valid(props), pc.is_valid(folded))
    merged = pc.if_else(pc.is_null(props), folded, props)
    if pc.any(both).as_py():
        at = np.flatnonzero(both.to_numpy(zero_copy_only=False))
        values = merged.to_pylist()
        for i, text in zip(
            at, merge_texts(props.take(at), folded.take(at)).to_pylist(), strict=True
        ):
            values[i] = text
        merged = pa.array(values, pa.string())
    index = table.column_names.index("properties")
    table = table.set_column(index, "properties", merged)
    gone = set(names)
    return table.select([i for i, n in enumerate(table.column_names) if n not in gone])


_WIDE = 64
"""Above this many columns to fold, :func:`_sparse_json_objects` is the faster encoder
(polars' cost grows with columns times rows; this one with the values present)."""


def _sparsejson_objects(table: pa.Table, names: list[str]) -> pa.Array:
    """:func:`_json_objects` of ``table.select(names)`` for many mostly-null columns."""
    n = table.num_rows
    objects: dict[int, dict[str, object]] = {}
    for name in names:
        col = table.column(name).combine_chunks()
        if col.null_count == n:
            continue
        valid = pc.is_valid(col)
        at = np.flatnonzero(valid.to_numpy(zero_copy_only=False))
        for i, value in zip(at.tolist(), col.filter(valid).to_pylist(), strict=True):
            objects.setdefault(i, {})[name] = value
    return pa.array([to_json(objects[i]) if i in objects else None for i in range(n)], pa.string())
