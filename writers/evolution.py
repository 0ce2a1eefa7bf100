"""Automatic schema evolution and conformance to the table's schema.

New plain, scalar top-level fields become optional columns (type inferred: boolean, long,
double, string, timestamptz), the way a crawler adds them. A value whose type conflicts
with its existing column is rejected with a reason; an integer is widened into a double
column (lossless), nothing else is coerced.

**A new column's type** is inferred from every value the batch holds for it, not from the
first one seen. Values fall into kinds: numbers (long, double), strings, booleans,
zone-aware timestamps. Within a kind the widest type wins (any double makes the column
double; integers widen into it as they would into an existing double column). Across
kinds there is no type that holds both without coercion, which this writer never does, so
the column takes the kind with the most non-null values (a tie goes to the kind seen
first) and the values of the other kinds are rejected one by one: ``"x", 1, 2, 3`` makes a
long column and rejects the one record holding ``"x"``. Majority, rather than "first
seen" or "reject the field", loses the fewest records, and the same batch always gives
the same column whatever the order of its lines.

**The number of columns is capped** (``LAKEHOUSE_MAX_COLUMNS``, core columns included):
every column widens every later commit's metadata. When a batch brings more new fields
than the cap leaves room for, the fields with the most values become columns and the
others are folded into each record's ``properties`` JSON (as normalisation folds nested
fields), so no value is lost; the write result counts them and says why.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.schema import Schema
from pyiceberg.table import Table
from pyiceberg.types import (
    BooleanType,
    DoubleType,
    IcebergType,
    IntegerType,
    LongType,
    StringType,
    TimestamptzType,
)

from catalog.commit import commit_with_retries
from lakehouse.schema import iceberg_type_for_arrow
from writers.parse import ROW_COLUMN

log = logging.getLogger(__name__)


_KINDS: tuple[tuple[str, tuple[type[IcebergType], ...]], ...] = (
    ("number", (LongType, IntegerType, DoubleType)),
    ("string", (StringType,)),
    ("boolean", (BooleanType,)),
    ("timestamp", (TimestamptzType,)),
)


def _kind(iceberg_type: IcebergType) -> str:
    return next((k for k, types in _KINDS if isinstance(iceberg_type, types)), str(iceberg_type))


@dataclass(frozen=True)
class ColumnPlan:
    """What a batch does to the table's columns: the ``columns`` to add (name -> type, in
    the order they were first seen) and the new fields ``folded`` into ``properties``
    because the table reached ``max_columns``."""

    columns: dict[str, IcebergType]
    folded: tuple[str, ...] = ()
    max_columns: int | None = None

    def warning(self) -> str | None:
        if not self.folded:
            return None
        shown = ", ".join(self.folded[:5]) + (", ..." if len(self.folded) > 5 else "")
        return (
            f"{len(self.folded)} new field(s) folded into properties ({shown}): the table "
            f"has reached LAKEHOUSE_MAX_COLUMNS={self.max_columns} columns"
        )


def new_columns(
    tables: Iterable[pa.Table], schema: Schema, *, max_columns: int | None = None
) -> ColumnPlan:
    """The columns a batch of normalised chunks adds to ``schema``: each typed from all
    of its values, at most ``max_columns`` columns in all (see the module docstring)."""
    known = {f.name for f in schema.fields}
    # name -> kind -> [non-null values, widest type]; dicts keep first-seen order
    seen: dict[str, dict[str, list[Any]]] = {}
    for table in tables:
        for field in table.schema:
            if field.name in known or field.name == ROW_COLUMN:
                continue
            iceberg_type = iceberg_type_for_arrow(field.type)
            if not isinstance(iceberg_type, IcebergType):
                continue
            values = table.num_rows - table.column(field.name).null_count
            kinds = seen.setdefault(field.name, {})
            entry = kinds.setdefault(_kind(iceberg_type), [0, iceberg_type])
            entry[0] += values
            if isinstance(iceberg_type, DoubleType):
                entry[1] = iceberg_type  # a double widens the number kind
    chosen: dict[str, tuple[int, IcebergType]] = {}
    for name, kinds in seen.items():
        values, iceberg_type = max(kinds.values(), key=lambda e: e[0])  # first of a tie
        chosen[name] = (values, iceberg_type)
    room = len(chosen) if max_columns is None else max(0, max_columns - len(known))
    if room >= len(chosen):
        return ColumnPlan({k: t for k, (_, t) in chosen.items()}, (), max_columns)
    order = sorted(chosen, key=lambda k: -chosen[k][0])  # most values first (stable)
    kept = set(order[:room])
    return ColumnPlan(
        {k: t for k, (_, t) in chosen.items() if k in kept},
        tuple(k for k in chosen if k not in kept),
        max_columns,
    )


def evolve(table: Table, columns: dict[str, IcebergType]) -> list[str]:
    """Add the missing columns as optional fields; concurrent evolutions are retried
    (the project's commit retry policy). Returns the names this call added."""
    if not columns:
        return []

    def attempt(_: int) -> list[str]:
        known = {f.name for f in table.schema().fields}
        missing = {k: v for k, v in columns.items() if k not in known}
        if not missing:
            return []
        with table.update_schema() as update:
            for name, iceberg_type in missing.items():
                update.add_column(name, iceberg_type, doc="added by schema evolution")
        log.info("schema evolution on %s: added %s", table.name(), ", ".join(missing))
        return list(missing)

    return commit_with_retries(
        table, attempt, what=f"columns {sorted(columns)}", refresh_first=True
    )


def _compatible(values: pa.Array, target: IcebergType) -> pa.Array | None:
    """``values`` cast to the target column's type, or None when the types conflict."""
    t = values.type
    if isinstance(target, StringType):
        return values if (pa.types.is_string(t) or pa.types.is_large_string(t)) else None
    if isinstance(target, (LongType, IntegerType)):
        return pc.cast(values, pa.int64()) if pa.types.is_integer(t) else None
    if isinstance(target, DoubleType):
        return (
            pc.cast(values, pa.float64())
            if (pa.types.is_floating(t) or pa.types.is_integer(t))
            else None
        )
    if isinstance(target, BooleanType):
        return values if pa.types.is_boolean(t) else None
    if isinstance(target, TimestamptzType):
        return values if (pa.types.is_timestamp(t) and t.tz is not None) else None
    return None


def conform(table: pa.Table, schema: Schema) -> tuple[pa.Table, list[tuple[int, str]]]:
    """Cast a normalised chunk to the table's Arrow schema (``__row`` kept last).
    Rows carrying a value of a conflicting type are returned as rejects."""
    target = schema.as_arrow()
    n = table.num_rows
    arrays: list[pa.Array] = []
    bad: pa.Array | None = None  # rows with a conflicting value, once there is one
    why: pa.Array | None = None
    names = set(table.column_names)
    for field in schema.fields:
        arrow_field = target.field(field.name)
        if field.name not in names:
            arrays.append(pa.nulls(n, arrow_field.type))
            continue
        col = table.column(field.name).combine_chunks()
        cast = _compatible(col, field.field_type) if pa.types.is_null(col.type) is False else col
        if cast is None:
            conflict = pc.is_valid(col)
            reason = f"{field.name}: column is {field.field_type}, got {col.type}"
            if bad is None or why is None:
                bad, why = conflict, pc.if_else(conflict, reason, pa.nulls(n, pa.string()))
            else:
                why = pc.if_else(pc.and_(conflict, pc.is_null(why)), reason, why)
                bad = pc.or_(bad, conflict)
            arrays.append(pa.nulls(n, arrow_field.type))
            continue
        arrays.append(cast if cast.type == arrow_field.type else pc.cast(cast, arrow_field.type))
    rejected: list[tuple[int, str]] = []
    rows = table.column(ROW_COLUMN).combine_chunks()
    out = pa.Table.from_arrays(
        [*arrays, rows], schema=target.append(pa.field(ROW_COLUMN, pa.int64()))
    )
    if bad is not None and why is not None and pc.any(bad).as_py():
        rejected = list(
            zip(pc.filter(rows, bad).to_pylist(), pc.filter(why, bad).to_pylist(), strict=True)
        )
        out = out.filter(pc.invert(bad))
    return out, rejected


def union(table: Table, schema: Schema) -> list[str]:
    """Add the fields of ``schema`` that ``table`` lacks (matched by name, as optional
    columns), through the project's commit retry policy. Returns the names added."""

    def attempt(_: int) -> list[str]:
        known = {f.name for f in table.schema().fields}
        missing = [f.name for f in schema.fields if f.name not in known]
        if not missing:
            return []
        with table.update_schema() as update:
            update.union_by_name(schema)
        log.info("schema of %s: added %s", table.name(), ", ".join(missing))
        return missing

    known = {f.name for f in table.schema().fields}
    if all(f.name in known for f in schema.fields):
        return []
    return commit_with_retries(table, attempt, what="schema union", refresh_first=True)
