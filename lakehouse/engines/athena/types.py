"""Athena result values (always text, ``VarCharValue``) to typed Arrow columns.

The type comes from ``ResultSetMetadata.ColumnInfo``: ``Type`` (``varchar``, ``bigint``,
``timestamp``, ``decimal``...) plus ``Precision``/``Scale`` for decimals. A missing
``VarCharValue`` is NULL; an empty one is the empty string. Values are converted with
Arrow casts where Arrow reads Athena's text as is, in Python otherwise. Types without a
faithful Arrow reading (``array``, ``map``, ``row``, ``json``, intervals, ``uuid``...)
stay text, exactly as Athena printed them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.engines.athena.errors import AthenaError

_INTS = {"tinyint": pa.int8(), "smallint": pa.int16(), "integer": pa.int32(), "int": pa.int32()}
_SIMPLE: dict[str, pa.DataType] = {
    **_INTS,
    "bigint": pa.int64(),
    "real": pa.float32(),
    "float": pa.float32(),
    "double": pa.float64(),
    "date": pa.date32(),
}
_PARAMS = re.compile(r"\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\)")
_EXTRA_DIGITS = r"(\.\d{6})\d+"  # Arrow parses at most 6 fractional digits into µs
_TZ_VALUE = re.compile(r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d+)?)\s*(.*)$")
_OFFSET = re.compile(r"^([+-])(\d{2}):?(\d{2})$")


def base_type(type_name: str) -> str:
    """``timestamp(3) with time zone`` -> ``timestamp with time zone``; ``decimal(10,2)``
    -> ``decimal``; lower case."""
    return " ".join(_PARAMS.sub("", type_name.lower()).split())


def arrow_type(info: Mapping[str, Any]) -> pa.DataType:
    """The Arrow type of one ``ColumnInfo``."""
    raw = str(info.get("Type", "varchar"))
    name = base_type(raw)
    if name in _SIMPLE:
        return _SIMPLE[name]
    if name == "boolean":
        return pa.bool_()
    if name == "decimal":
        match = _PARAMS.search(raw)
        precision = int(match.group(1)) if match else int(info.get("Precision") or 38)
        scale = int(match.group(2) or 0) if match else int(info.get("Scale") or 0)
        if precision > 38:
            return pa.decimal256(precision, scale)
        return pa.decimal128(max(precision, 1), scale)
    if name == "timestamp":
        return pa.timestamp("us")
    if name == "timestamp with time zone":
        return pa.timestamp("us", tz="UTC")
    if name == "time":
        return pa.time64("us")
    if name == "varbinary":
        return pa.binary()
    return pa.string()


def convert_column(values: Sequence[str | None], info: Mapping[str, Any]) -> pa.Array:
    """One column's text values as an Arrow array of the column's type."""
    target = arrow_type(info)
    raw = pa.array(values, pa.string())
    name = base_type(str(info.get("Type", "varchar")))
    try:
        if pa.types.is_string(target):
            return raw
        if pa.types.is_boolean(target):
            return pc.cast(pc.utf8_lower(raw), target)
        if name == "timestamp":
            return pc.cast(pc.replace_substring_regex(raw, _EXTRA_DIGITS, r"\1"), target)
        if name == "timestamp with time zone":
            return _tstz_column(raw, values, target)
        if name == "time":
            return pa.array([_parse_time(v) for v in values], target)
        if pa.types.is_binary(target):
            return pa.array([_parse_hex(v) for v in values], target)
        return pc.cast(raw, target)
    except (pa.ArrowInvalid, ValueError) as exc:
        raise AthenaError(
            f"cannot read column {info.get('Name')!r} of type {info.get('Type')!r}: {exc}"
        ) from exc


def to_table(
    columns: Sequence[Mapping[str, Any]], rows: Sequence[Sequence[str | None]]
) -> pa.Table:
    """Rows of text (one list per row) typed by ``ColumnInfo`` into an Arrow table."""
    arrays = [convert_column([row[i] for row in rows], info) for i, info in enumerate(columns)]
    fields = [
        pa.field(str(info.get("Name", f"_col{i}")), arr.type)
        for i, (info, arr) in enumerate(zip(columns, arrays, strict=True))
    ]
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _tstz_column(raw: pa.Array, values: Sequence[str | None], target: pa.DataType) -> pa.Array:
    """Zoned timestamps: Arrow reads the common case (every value in UTC, as Iceberg's
    timestamptz comes back) at once; other zones and offsets go through Python."""
    if pc.all(pc.ends_with(raw, " UTC")).as_py() is not False:  # None: all NULL
        naive = pc.replace_substring_regex(
            pc.utf8_slice_codeunits(raw, 0, -4), _EXTRA_DIGITS, r"\1"
        )
        return pc.cast(naive, pa.timestamp("us")).cast(target)
    return pa.array([_parse_tstz(v) for v in values], target)


def _parse_tstz(value: str | None) -> datetime | None:
    """``2024-05-01 10:00:00.123456 UTC`` (or a zone id, or ``+02:00``) -> aware UTC."""
    if value is None:
        return None
    match = _TZ_VALUE.match(value.strip())
    if not match:
        raise ValueError(f"not a timestamp with time zone: {value!r}")
    local = _parse_naive(match.group(1))
    zone = match.group(2) or "UTC"
    offset = _OFFSET.match(zone)
    if offset:
        sign = -1 if offset.group(1) == "-" else 1
        tz: Any = timezone(
            sign * timedelta(hours=int(offset.group(2)), minutes=int(offset.group(3)))
        )
    elif zone.upper() in {"UTC", "Z", "GMT"}:
        tz = UTC
    else:
        try:
            tz = ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {zone!r}") from exc
    return local.replace(tzinfo=tz).astimezone(UTC)


def _parse_naive(text: str) -> datetime:
    whole, _, fraction = text.partition(".")
    base = datetime.strptime(whole, "%Y-%m-%d %H:%M:%S")
    return base.replace(microsecond=int((fraction + "000000")[:6]) if fraction else 0)


def _parse_time(value: str | None) -> time | None:
    if value is None:
        return None
    whole, _, fraction = value.strip().partition(".")
    parsed = datetime.strptime(whole, "%H:%M:%S").time()
    return parsed.replace(microsecond=int((fraction + "000000")[:6]) if fraction else 0)


def _parse_hex(value: str | None) -> bytes | None:
    if value is None:
        return None
    return bytes.fromhex("".join(value.split()))
