"""Validate and normalise one parsed chunk, vectorised.

* required fields present and non-empty; ``event_id``/``user_id``/``event_type``/``session_id``
  are strings (a number is a type conflict, never coerced);
* ``client_ts``/``server_ts``: ISO-8601 with an offset or ``Z``, epoch milliseconds, or a
  zone-aware Arrow timestamp, to UTC microseconds; ``server_ts`` defaults to the receipt time;
* ``client_ts`` more than ``max_future_skew`` after the receipt time is rejected;
* ``properties`` is JSON object text; nested values outside it, and fields whose names are
  not plain lower-case identifiers, are folded into it;
* other scalar fields are kept as candidate columns (schema evolution decides on them).

Every rejected row gets a reason; nothing is silently coerced or dropped.
"""

from __future__ import annotations

import re
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from lakehouse.schema import CORE_COLUMNS, TIMESTAMP_ARROW
from writers.fold import json_objects, merge_texts, to_json
from writers.parse import MAX_NESTING, ROW_COLUMN, holds_binary, type_depth

_COLUMN_NAME = re.compile(r"[a-z_][a-z0-9_]{0,127}")
MIN_CLIENT_TS = datetime.fromisoformat("2000-01-01T00:00:00+00:00")
_STRING_COLUMNS = ("event_id", "user_id", "event_type", "session_id")
_REQUIRED_INPUT = ("event_id", "user_id", "event_type", "client_ts")


@dataclass
class Normalized:
    """Valid rows (core columns typed, extra scalar columns as inferred, ``__row``)
    and the rejected rows as ``(row, reason)`` pairs."""

    table: pa.Table
    rejected: list[tuple[int, str]]


class _Reasons:
    """The first reason found for each row; null while the row is still valid."""

    def __init__(self, n: int) -> None:
        self.values: pa.Array = pa.nulls(n, pa.string())

    def flag(self, mask: pa.Array, reason: str | pa.Array) -> None:
        mask = pc.fill_null(mask, False)
        if not pc.any(mask).as_py():
            return
        self.values = pc.if_else(pc.and_(mask, pc.is_null(self.values)), reason, self.values)

    @property
    def valid(self) -> pa.Array:
        return pc.is_null(self.values)


def is_plain_name(name: str) -> bool:
    return bool(_COLUMN_NAME.fullmatch(name)) and not name.startswith("__")


def _is_nested(t: pa.DataType) -> bool:
    return bool(pa.types.is_nested(t) or pa.types.is_map(t))


def _is_scalar_column(t: pa.DataType) -> bool:
    return (
        pa.types.is_boolean(t)
        or pa.types.is_integer(t)
        or pa.types.is_floating(t)
        or pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or (pa.types.is_timestamp(t) and t.tz is not None)
    )


def to_timestamps(col: pa.Array, name: str, reasons: _Reasons) -> pa.Array:
    """Convert one column to ``timestamp[us, UTC]``; unconvertible values become null and
    are flagged with a reason."""
    t = col.type
    n = len(col)
    if pa.types.is_null(t):
        return pa.nulls(n, TIMESTAMP_ARROW)
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        try:
            return pc.cast(col, TIMESTAMP_ARROW)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return _parse_iso_mixed(col, name, reasons)
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        values = pc.cast(col, pa.float64()) if pa.types.is_floating(t) else pc.cast(col, pa.int64())
        if pa.types.is_floating(t):
            finite = pc.is_finite(values)
            reasons.flag(pc.invert(finite), f"{name}: not a finite number")
            values = pc.if_else(finite, values, None)
            # the range is checked on the float: an unchecked cast of one past int64
            # would wrap around into a plausible (and wrong) time
            micros = pc.round(pc.multiply(values, 1000.0))
            millis_ok = pc.less(pc.abs(micros), float(2**62))
            values = pc.cast(pc.if_else(millis_ok, micros, None), pa.int64(), safe=False)
        else:
            millis_ok = pc.less(pc.abs(values), 2**53)
            values = pc.if_else(millis_ok, values, None)
            values = pc.multiply(values, 1000)
        reasons.flag(pc.invert(millis_ok), f"{name}: epoch milliseconds out of range")
        return pc.cast(values, pa.int64()).cast(TIMESTAMP_ARROW)
    if pa.types.is_timestamp(t):
        if t.tz is None:
            reasons.flag(pc.is_valid(col), f"{name}: timestamp has no time zone")
            return pa.nulls(n, TIMESTAMP_ARROW)
        return pc.cast(col, TIMESTAMP_ARROW, safe=False)
    reasons.flag(
        pc.is_valid(col), f"{name}: expected an ISO-8601 string or epoch milliseconds, got {t}"
    )
    return pa.nulls(n, TIMESTAMP_ARROW)


_ISO = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?([Zz]|[+-]\d{2}(:?\d{2})?)$"


def _parse_iso_mixed(col: pa.Array, name: str, reasons: _Reasons) -> pa.Array:
    """A column where some values do not cast: cast the well-formed ones at once, and
    look at the others one by one for a precise reason."""
    well_formed = pc.fill_null(pc.match_substring_regex(col, _ISO), False)
    try:
        fast = pc.cast(pc.if_else(well_formed, col, pa.scalar(None, col.type)), TIMESTAMP_ARROW)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return _parse_iso_slowly(col, name, reasons)
    odd = pc.and_(pc.invert(well_formed), pc.is_valid(col))
    if not pc.any(odd).as_py():
        return fast
    sub = _Reasons(int(pc.sum(odd).as_py()))
    slow = _parse_iso_slowly(pc.filter(col, odd), name, sub)
    why = pc.replace_with_mask(pa.nulls(len(col), pa.string()), odd, sub.values)
    reasons.flag(pc.is_valid(why), why)
    return pc.replace_with_mask(fast, odd, slow)


def _parse_iso_slowly(col: pa.Array, name: str, reasons: _Reasons) -> pa.Array:
    out: list[datetime | None] = []
    why: list[str | None] = []
    for value in col.to_pylist():
        if value is None:
            out.append(None)
            why.append(None)
            continue
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            out.append(None)
            why.append(f"{name}: not an ISO-8601 timestamp: {value[:64]!r}")
            continue
        if parsed.tzinfo is None:
            out.append(None)
            why.append(f"{name}: timestamp has no UTC offset (add Z or +hh:mm): {value[:64]!r}")
            continue
        out.append(parsed)
        why.append(None)
    why_arr = pa.array(why, pa.string())
    reasons.flag(pc.is_valid(why_arr), why_arr)
    return pa.array(out, TIMESTAMP_ARROW)


_CHECKS = ThreadPoolExecutor(1, thread_name_prefix="lakehouse-properties")
_OBJECTS_ONLY = pj.ParseOptions(explicit_schema=pa.schema([]), unexpected_field_behavior="ignore")
_SMALL_BLOCKS = pj.ReadOptions(block_size=256 * 1024)  # short texts: small blocks were faster


def not_object_texts(texts: pa.Array) -> np.ndarray:
    """Positions of the non-null values that are not the text of one JSON object (see
    :func:`_not_object_texts`); large arrays are checked in two halves at once."""
    half = len(texts) // 2
    if half < 100_000:
        return _not_object_texts(texts)
    with ThreadPoolExecutor(2, thread_name_prefix="lakehouse-check") as pool:
        low = pool.submit(_not_object_texts, texts.slice(0, half))
        high = pool.submit(_not_object_texts, texts.slice(half))
        return np.concatenate((low.result(), high.result() + half))


def _not_object_texts(texts: pa.Array) -> np.ndarray:
    """Positions of the non-null values that are not the text of one JSON object.

    Texts that start with ``{``, end with ``}`` and hold no line break are parsed at once
    by ``pyarrow.json``, one per line (keys ignored, nothing built): each such line yields
    at least one object or an error, so exactly one object per line means each is one
    valid object. The rest, any with ``NaN``/``Infinity`` (which that parser accepts), and
    all of them when the bulk parse fails, are checked one by one with orjson."""
    valid = pc.is_valid(texts)
    present = np.flatnonzero(valid.to_numpy(zero_copy_only=False))
    if len(present) == 0:
        return present
    values = pc.cast(texts.filter(valid) if len(present) < len(texts) else texts, pa.string())
    offsets = np.frombuffer(values.buffers()[1], np.int32)[values.offset :][: len(values) + 1]
    raw = values.buffers()[2]
    data = np.frombuffer(raw, np.uint8) if raw is not None else np.empty(0, np.uint8)
    lengths = np.diff(offsets)
    first = data[np.minimum(offsets[:-1], max(len(data) - 1, 0))] if len(data) else lengths
    last = data[np.maximum(offsets[1:] - 1, 0)] if len(data) else lengths
    simple = (lengths >= 2) & (first == ord("{")) & (last == ord("}"))
    text = raw[int(offsets[0]) : int(offsets[-1])].to_pybytes() if raw is not None else b""
    for mark in ("\n", "\r"):
        if mark.encode() in text:
            simple &= ~pc.match_substring(values, mark).to_numpy(zero_copy_only=False)
    check = np.flatnonzero(~simple)
    bulk = np.flatnonzero(simple)
    if len(bulk):
        part = values if len(bulk) == len(values) else values.take(pa.array(bulk))
        try:
            lines = pc.binary_join_element_wise(part, pa.scalar(""), "\n")
            ends = np.frombuffer(lines.buffers()[1], np.int32)[lines.offset :]
            block = lines.buffers()[2][int(ends[0]) : int(ends[len(lines)])]
            parsed = pj.read_json(
                pa.BufferReader(block), parse_options=_OBJECTS_ONLY, read_options=_SMALL_BLOCKS
            )
            whole = parsed.num_rows == len(part)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            whole = False
        if not whole:
            check = np.arange(len(values))
        elif b"NaN" in text or b"Infinity" in text:
            odd = pc.or_(pc.match_substring(values, "NaN"), pc.match_substring(values, "Infinity"))
            check = np.union1d(check, np.flatnonzero(odd.to_numpy(zero_copy_only=False)))
    bad = [i for i in check.tolist() if not _is_object_text(values[i].as_py())]
    return present[np.asarray(bad, np.int64)] if bad else np.empty(0, np.int64)


def _is_object_text(text: str) -> bool:
    try:
        return isinstance(orjson.loads(text), dict)
    except orjson.JSONDecodeError:
        return False


def _properties(
    table: pa.Table, fold: list[str], reasons: _Reasons, pending: Future[np.ndarray] | None = None
) -> pa.Array:
    n = table.num_rows
    struct_keys: set[str] | None = None
    props = (
        table.column("properties").combine_chunks() if "properties" in table.column_names else None
    )
    if props is not None and pa.types.is_null(props.type):
        props = None
    raw_type = props.type if props is not None else None
    if props is not None and not (
        pa.types.is_string(props.type)
        or pa.types.is_large_string(props.type)
        or pa.types.is_struct(props.type)
        or pa.types.is_map(props.type)
    ):
        reasons.flag(pc.is_valid(props), f"properties: expected a JSON object, got {props.type}")
        props = None
    if props is not None and (pa.types.is_struct(props.type) or pa.types.is_map(props.type)):
        # a struct of properties: encode it (an empty struct type has no fields to encode)
        valid = pc.is_valid(props)
        struct_keys = {f.name for f in props.type} if pa.types.is_struct(props.type) else None
        if pa.types.is_struct(props.type) and props.type.num_fields > 0:
            encoded = pc.fill_null(json_objects(pa.Table.from_struct_array(props)), "{}")
        elif pa.types.is_struct(props.type):
            encoded = pa.array(["{}"] * n, pa.string())
        else:  # a map: rare, take the Python path
            encoded = pa.array(
                [to_json(dict(m)) if m is not None else None for m in props.to_pylist()],
                pa.string(),
            )
        props = pc.if_else(valid, encoded, pa.nulls(n, pa.string()))
    if props is not None:
        props = pc.cast(props, pa.string())
        if struct_keys is None and not (pa.types.is_map(raw_type) if raw_type else False):
            bad = pending.result() if pending is not None else not_object_texts(props)
            if len(bad):
                mask = np.zeros(n, bool)
                mask[bad] = True
                reasons.flag(pa.array(mask), "properties: not JSON object text")
    if not fold:
        return props if props is not None else pa.nulls(n, pa.string())
    folded = json_objects(table.select(fold))
    if props is None:
        return folded
    if struct_keys is not None and not struct_keys & set(fold):
        # both are objects we encoded, with distinct keys: splice the texts together
        inner = pc.utf8_slice_codeunits(folded, 1)
        spliced = pc.binary_join_element_wise(pc.utf8_slice_codeunits(props, 0, -1), inner, ",")
        spliced = pc.if_else(pc.equal(props, "{}"), folded, spliced)
        return pc.if_else(pc.is_null(folded), props, pc.if_else(pc.is_null(props), folded, spliced))
    return merge_texts(props, folded)


def _drop_unstorable(table: pa.Table, reasons: _Reasons) -> pa.Table:
    """Reject the rows that carry a value no column or JSON text can hold (nested deeper
    than :data:`MAX_NESTING`, or binary) and drop such columns. The NDJSON and record
    parsers reject these line by line already; Arrow and Polars input arrives typed."""
    for name in table.column_names:
        if name == ROW_COLUMN:
            continue
        t = table.schema.field(name).type
        if type_depth(t) > MAX_NESTING:
            why = f"{name}: nested deeper than {MAX_NESTING} levels"
        elif holds_binary(t):
            why = f"{name}: binary data is not accepted (decode bytes to text first)"
        else:
            continue
        reasons.flag(pc.is_valid(table.column(name)), why)
        table = table.drop_columns([name])
    return table


def normalize(
    table: pa.Table,
    *,
    receipt_time: datetime | pa.Array,
    max_future_skew: timedelta,
    receipt_estimated: bool = False,
) -> Normalized:
    """Normalise one homogeneous chunk; see the module docstring for the rules.
    ``receipt_time`` is one time for every row, or an array with one per row.
    ``receipt_estimated``: the receipt time comes from storage metadata (a landing key's
    time, a file's modification time), not a server clock; a ``client_ts`` after it is
    then no sign of device clock skew, and both timestamps are checked against the
    current time instead."""
    n = table.num_rows
    reasons = _Reasons(n)
    table = _drop_unstorable(table, reasons)
    pending = None
    if "properties" in table.column_names and (
        pa.types.is_string(table.schema.field("properties").type)
        or pa.types.is_large_string(table.schema.field("properties").type)
    ):  # the slowest check: run it beside the others
        pending = _CHECKS.submit(not_object_texts, table.column("properties").combine_chunks())
    names = set(table.column_names)
    for name in _REQUIRED_INPUT:
        if name not in names:
            reasons.flag(pa.array([True] * n), f"missing required field {name}")
    columns: dict[str, pa.Array] = {}
    for name in _STRING_COLUMNS:
        if name not in names or pa.types.is_null(table.schema.field(name).type):
            columns[name] = pa.nulls(n, pa.large_string())
            continue
        col = table.column(name).combine_chunks()
        if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
            reasons.flag(pc.is_valid(col), f"{name}: expected a string, got {col.type}")
            columns[name] = pa.nulls(n, pa.large_string())
            continue
        col = pc.cast(col, pa.large_string())
        if name != "session_id":
            reasons.flag(pc.equal(pc.utf8_length(col), 0), f"{name} is empty")
        columns[name] = col
    for name in ("event_id", "user_id", "event_type"):
        reasons.flag(pc.is_null(columns[name]), f"missing required field {name}")

    receipt = (
        pa.scalar(receipt_time, TIMESTAMP_ARROW)
        if isinstance(receipt_time, datetime)
        else receipt_time
    )
    skew = pa.scalar(max_future_skew, pa.duration("us"))
    client = (
        to_timestamps(table.column("client_ts").combine_chunks(), "client_ts", reasons)
        if "client_ts" in names
        else pa.nulls(n, TIMESTAMP_ARROW)
    )
    reasons.flag(pc.is_null(client), "missing required field client_ts")
    server = (
        to_timestamps(table.column("server_ts").combine_chunks(), "server_ts", reasons)
        if "server_ts" in names
        else pa.nulls(n, TIMESTAMP_ARROW)
    )
    skew_reason = (
        f"client_ts is more than {max_future_skew} after its receipt time (device clock skew)"
    )
    if receipt_estimated:
        now = pa.scalar(datetime.now(UTC), TIMESTAMP_ARROW)
        stated = pc.is_valid(server)
        reasons.flag(pc.greater(server, pc.add(now, skew)), "server_ts is in the future")
        reasons.flag(pc.and_(stated, pc.greater(client, pc.add(server, skew))), skew_reason)
        reasons.flag(pc.greater(client, pc.add(now, skew)), skew_reason)
        server = pc.fill_null(server, receipt)
    else:
        server = pc.fill_null(server, receipt)
        reasons.flag(pc.greater(server, pc.add(receipt, skew)), "server_ts is in the future")
        reasons.flag(pc.greater(client, pc.add(server, skew)), skew_reason)
    reasons.flag(
        pc.less(client, pa.scalar(MIN_CLIENT_TS, TIMESTAMP_ARROW)), "client_ts is before 2000-01-01"
    )
    columns["client_ts"] = client
    columns["server_ts"] = server

    fold: list[str] = []
    extras: dict[str, pa.Array] = {}
    for name in table.column_names:
        if name in CORE_COLUMNS or name == ROW_COLUMN:
            continue
        col = table.column(name).combine_chunks()
        if pa.types.is_null(col.type):
            continue  # only nulls: nothing to keep
        if not is_plain_name(name) or _is_nested(col.type) or not _is_scalar_column(col.type):
            fold.append(name)
            continue
        if pa.types.is_floating(col.type):
            reasons.flag(
                pc.invert(pc.is_finite(col)), f"{name}: NaN or Infinity is not a valid value"
            )
        extras[name] = col
    columns["properties"] = _properties(table, fold, reasons, pending)

    out = pa.table(
        {**{c: columns[c] for c in CORE_COLUMNS}, **extras, ROW_COLUMN: table.column(ROW_COLUMN)}
    )
    if reasons.values.null_count == n:  # every row valid: no filtering copy
        return Normalized(out, [])
    valid = reasons.valid
    rows = table.column(ROW_COLUMN).combine_chunks()
    bad = pc.invert(valid)
    rejected = list(
        zip(
            pc.filter(rows, bad).to_pylist(),
            pc.filter(reasons.values, bad).to_pylist(),
            strict=True,
        )
    )
    return Normalized(out.filter(valid), rejected)
