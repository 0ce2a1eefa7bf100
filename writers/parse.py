"""Turn every accepted input form into homogeneous Arrow chunks.

Input forms: NDJSON bytes (a landing-zone file), iterables of dicts, ``pyarrow``
tables/batches and ``polars`` DataFrames. A chunk is an Arrow table whose columns each
have one type, plus what is needed to trace any row back to its source (file and line,
or batch) and its raw payload.

NDJSON is parsed by ``pyarrow.json`` in one go (the fast path). When that fails, every
line is checked once with orjson and the valid ones are parsed together; values whose
JSON type changes between lines split the lines into homogeneous groups; anything else is
isolated by bisection. Every good line still gets in, and each bad one gets a reason.
"""

from __future__ import annotations

import bisect
import io
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.json as pj

ROW_COLUMN = "__row"
RESERVED = f"field name {ROW_COLUMN!r} is reserved for the lakehouse's own use"
_BLOCK_SIZE = 4 * 1024 * 1024  # blocks are parsed in parallel; 4 MB measured fastest here
BOM = b"\xef\xbb\xbf"
_BOM = BOM
MAX_NESTING = 64
"""Objects and arrays may nest this deep; a record nested deeper is rejected (polars, which
encodes nested values as JSON text, overflows its stack on a ~1,000-deep value)."""
_BINARY = (bytes, bytearray, memoryview)


def objects_only(data: bytes | memoryview) -> bool:
    """Whether every line starts with ``{`` (or is empty). ``pyarrow.json`` parses only
    such buffers: it crashes the process on a buffer (or block) that begins with, for
    example, ``null``, so anything else takes the careful path, line by line."""
    arr = np.frombuffer(data, np.uint8)
    if len(arr) == 0:
        return True
    if arr[0] != 123 and arr[0] != 10:
        return False
    first = arr[np.flatnonzero(arr[:-1] == 10) + 1]
    return bool(np.all((first == 123) | (first == 10)))


def type_depth(t: pa.DataType, limit: int = MAX_NESTING) -> int:
    """How deep an Arrow type nests (a scalar is 0, a struct of scalars 1); counting stops
    just past ``limit``."""
    deepest = 0
    stack = [(t, 0)]
    while stack:
        t, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > limit:
            break
        # structs, lists, maps: every nested type lists its children as fields
        stack.extend((t.field(i).type, depth + 1) for i in range(t.num_fields))
    return deepest


def holds_binary(t: pa.DataType) -> bool:
    """Whether an Arrow type has binary values anywhere in it."""
    stack = [t]
    while stack:
        t = stack.pop()
        if (
            pa.types.is_binary(t)
            or pa.types.is_large_binary(t)
            or pa.types.is_fixed_size_binary(t)
            or (hasattr(pa.types, "is_binary_view") and pa.types.is_binary_view(t))
        ):
            return True
        stack.extend(t.field(i).type for i in range(t.num_fields))
    return False


def value_problem(record: Any, limit: int = MAX_NESTING) -> str | None:
    """Why a parsed record cannot be stored as it is: nested deeper than ``limit``, or
    holding binary data (bytes are not JSON and cannot be encoded as text)."""
    stack: list[tuple[Any, int, str]] = [(record, 0, "")]
    while stack:
        value, depth, path = stack.pop()
        if isinstance(value, dict):
            if depth >= limit:
                return f"nested deeper than {limit} levels"
            stack.extend(
                (v, depth + 1, f"{path}.{k}" if path else str(k)) for k, v in value.items()
            )
        elif isinstance(value, (list, tuple)):
            if depth >= limit:
                return f"nested deeper than {limit} levels"
            stack.extend((v, depth + 1, f"{path}[{i}]") for i, v in enumerate(value))
        elif isinstance(value, _BINARY):
            return f"{path or 'value'}: binary data is not accepted (decode bytes to text first)"
    return None


@dataclass(frozen=True)
class LineMap:
    """Where the lines of a buffer came from. Several files can be joined into one buffer
    and parsed at once; a buffer line number (1-based) maps back to a file and its line."""

    sources: tuple[str, ...]
    starts: tuple[int, ...]  # buffer line number of each source's first line
    lines: int | None = None  # newlines in the whole buffer, when known
    objects_only: bool | None = None  # every line starts with "{" (see objects_only), if known
    before: tuple[int, ...] | None = None  # lines of each source before its part (read on)

    @classmethod
    def single(cls, source: str) -> LineMap:
        return cls((source,), (1,))

    def locate(self, line: int) -> tuple[str, int]:
        """(source, line within that source) of a buffer line."""
        i = bisect.bisect_right(self.starts, line) - 1
        skipped = self.before[i] if self.before is not None else 0
        return self.sources[i], line - self.starts[i] + 1 + skipped

    def source_index(self, lines: np.ndarray) -> np.ndarray:
        """Index into ``sources`` of each buffer line."""
        return np.searchsorted(np.asarray(self.starts), lines, side="right") - 1


@dataclass
class Chunk:
    """Parsed rows. ``table`` carries a ``__row`` column, the row's index in its input,
    so a reject found later can be traced back to its source, line and raw payload."""

    table: pa.Table
    raw_of: Callable[[int], str | None]
    origin: Callable[[int], tuple[str, int | None]]
    # buffer line of each row (vectorised), and the map of buffer lines to files
    lines: Callable[[np.ndarray], np.ndarray] | None = None
    line_map: LineMap | None = None

    def source_index(self, rows: np.ndarray) -> np.ndarray | None:
        if self.lines is None or self.line_map is None:
            return None
        return self.line_map.source_index(self.lines(rows))


@dataclass
class Parsed:
    chunks: list[Chunk] = field(default_factory=list)
    # records (non-blank lines) per source of the line map, for NDJSON input
    per_source: list[int] | None = None
    # (source, line, raw, reason) for records that could not be parsed at all.
    failures: list[tuple[str, int | None, str | None, str]] = field(default_factory=list)
    records: int = 0


def _row_numbers(lo: int, hi: int) -> pa.Array:
    return pa.array(np.arange(lo, hi, dtype=np.int64))


def _with_rows(table: pa.Table, rows: pa.Array) -> pa.Table:
    return table.append_column(ROW_COLUMN, rows)


# --- NDJSON -------------------------------------------------------------------------


# Core fields are strings on the fast path: declaring them spares pyarrow the type
# inference (measured 1.7x faster parsing). A line that does not fit (a number where a
# string belongs, epoch-millisecond timestamps) sends its buffer to the careful path,
# which parses without this hint.
_STRING_HINT = ("event_id", "user_id", "event_type", "session_id", "client_ts", "server_ts")


def _read_json(data: bytes, *, whole: bool = False, hint: bool = False) -> pa.Table:
    """Parse NDJSON; ``whole`` parses in one block (no line may straddle blocks);
    ``hint`` declares the core fields as strings."""
    block = len(data) + 1 if whole or len(data) < _BLOCK_SIZE else _BLOCK_SIZE
    opts = pj.ReadOptions(block_size=max(block, 1 << 16), use_threads=True)
    declared = [pa.field(name, pa.string()) for name in _STRING_HINT] if hint else []
    parse = pj.ParseOptions(explicit_schema=pa.schema(declared), unexpected_field_behavior="infer")
    table = pj.read_json(io.BytesIO(data), read_options=opts, parse_options=parse)
    # pyarrow infers naive timestamps from some strings; keep strings as written.
    inferred = [f.name for f in table.schema if pa.types.is_timestamp(f.type)]
    if inferred:
        parse = pj.ParseOptions(
            explicit_schema=pa.schema(
                declared + [pa.field(name, pa.string()) for name in inferred]
            ),
            unexpected_field_behavior="infer",
        )
        table = pj.read_json(io.BytesIO(data), read_options=opts, parse_options=parse)
    if hint:  # a declared field no line carries is absent, not a column of nulls
        missing = [f.name for f in declared if table.column(f.name).null_count == table.num_rows]
        table = table.drop_columns(missing) if missing else table
    table.validate(full=True)  # pyarrow.json does not check UTF-8 by itself
    return table


def _decode_error(line: bytes) -> str | None:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"invalid UTF-8 at byte {exc.start}"
    return None


def _line_failure(line: bytes, exc: Exception) -> str:
    bad = _decode_error(line)
    if bad:
        return bad
    try:
        value = json.loads(line)
    except ValueError as err:
        return f"invalid JSON: {err}"
    if not isinstance(value, dict):
        return f"not a JSON object (got {type(value).__name__})"
    return f"unreadable record: {exc}"


def join_files(
    parts: Sequence[tuple[str, bytes]],
    newlines: Sequence[int] | None = None,
    objects: Sequence[bool] | None = None,
    lines_before: Sequence[int] | None = None,
) -> tuple[bytes, LineMap]:
    """Join NDJSON files into one buffer (a BOM dropped, a final newline added) and the
    map from its lines back to each file's lines. ``newlines`` and ``objects`` (counted
    and checked elsewhere, one per part, BOM excluded) spare that work here;
    ``lines_before`` are the lines of each file before its part (a file read on from
    where an earlier read stopped), added to its line numbers."""
    buffers: list[bytes] = []
    starts: list[int] = []
    line = 1
    for k, (_, data) in enumerate(parts):
        if data.startswith(_BOM):
            data = data[len(_BOM) :]
        count = newlines[k] if newlines is not None else data.count(b"\n")
        if data and not data.endswith(b"\n"):
            data += b"\n"
            count += 1
        starts.append(line)
        line += count
        buffers.append(data)
    joined = buffers[0] if len(buffers) == 1 else b"".join(buffers)
    return joined, LineMap(
        tuple(name for name, _ in parts),
        tuple(starts),
        lines=line - 1,
        objects_only=all(objects) if objects is not None else None,
        before=tuple(lines_before) if lines_before is not None and any(lines_before) else None,
    )


def parse_ndjson(data: bytes, source: str | LineMap) -> Parsed:
    """Parse newline-delimited JSON. Blank lines are ignored; CRLF and a UTF-8 BOM are
    accepted; each other line becomes a row or a failure with its source and 1-based line.
    ``source`` names the file, or maps the lines of several joined files (:func:`join_files`)."""
    line_map = LineMap.single(source) if isinstance(source, str) else source
    if isinstance(source, str) and data.startswith(_BOM):  # (join_files drops each file's)
        data = b" " * len(_BOM) + data[len(_BOM) :]
    out = Parsed(per_source=[0] * len(line_map.sources))
    if not data or data.isspace():  # (isspace stops at the first other byte)
        return out
    split_cache: list[tuple[list[bytes], np.ndarray]] = []

    def split() -> tuple[list[bytes], np.ndarray]:
        """Non-blank lines and their buffer line numbers."""
        if not split_cache:
            raw = data.split(b"\n")
            numbers = [i + 1 for i, text in enumerate(raw) if text.strip()]
            split_cache.append(
                ([raw[i - 1].rstrip(b"\r") for i in numbers], np.asarray(numbers, np.int64))
            )
        return split_cache[0]

    def raw_at(idx: int) -> str:
        return split()[0][idx].decode("utf-8", errors="backslashreplace")

    def line_numbers(rows: np.ndarray) -> np.ndarray:
        numbers: np.ndarray = split()[1][rows]
        return numbers

    def origin(idx: int) -> tuple[str, int | None]:
        return line_map.locate(int(line_numbers(np.asarray([idx]))[0]))

    safe = line_map.objects_only if line_map.objects_only is not None else objects_only(data)
    try:
        table: pa.Table | None = _read_json(data, hint=True) if safe else None
    except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError, ValueError):
        table = None
    if table is not None and any(type_depth(f.type) > MAX_NESTING for f in table.schema):
        table = None  # some line nests too deep: find it line by line
    if table is not None and ROW_COLUMN in table.column_names:
        table = None  # some line uses the reserved field name: find it line by line
    if table is not None:
        newlines = (
            line_map.lines
            if line_map.lines is not None and data.endswith(b"\n")
            else data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
        )
        if newlines == table.num_rows:  # no blank lines: row i is line i + 1
            out.records = table.num_rows
            rows = _row_numbers(0, table.num_rows)
            out.per_source = _count_per_source(line_map, np.arange(1, table.num_rows + 1))
            out.chunks.append(
                Chunk(
                    _with_rows(table, rows),
                    raw_at,
                    lambda i: line_map.locate(i + 1),
                    lambda r: r + 1,
                    line_map,
                )
            )
            return out
        if len(split()[0]) == table.num_rows:  # blank lines: map rows to lines explicitly
            out.records = table.num_rows
            out.per_source = _count_per_source(line_map, split()[1])
            rows = _row_numbers(0, table.num_rows)
            out.chunks.append(
                Chunk(_with_rows(table, rows), raw_at, origin, line_numbers, line_map)
            )
            return out
    lines, numbers = split()
    out.records = len(lines)
    out.per_source = _count_per_source(line_map, numbers)

    def fail(i: int, reason: str) -> None:
        name, local = line_map.locate(int(numbers[i]))
        out.failures.append(
            (name, local, lines[i].decode("utf-8", errors="backslashreplace"), reason)
        )

    def keep(part: pa.Table, rows: Sequence[int]) -> None:
        rows_array = pa.array(np.asarray(rows, np.int64))
        out.chunks.append(
            Chunk(_with_rows(part, rows_array), raw_at, origin, line_numbers, line_map)
        )

    _parse_carefully(lines, fail, keep)
    out.chunks = _merge_alike(out.chunks)
    return out


_CHANGED = re.compile(r"Column\((/[^)]*)\) changed from")


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "object" if isinstance(value, dict) else "array"


def _at_path(record: dict[str, Any], path: list[str]) -> Any:
    value: Any = record
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _parse_carefully(
    lines: Sequence[bytes],
    fail: Callable[[int, str], None],
    keep: Callable[[pa.Table, Sequence[int]], None],
) -> None:
    """The path taken when a buffer does not parse in one go. Every line is checked once
    with orjson (syntax, UTF-8, an object at the top); the rest is parsed together. When
    pyarrow reports a value whose JSON type changes between lines, the lines are split by
    the type at that path and each part is parsed on its own, so a few conflicting values
    cost a few parses. Anything else is isolated by bisection."""
    records: dict[int, Any] = {}
    for i, line in enumerate(lines):
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            if "depth limit" in str(exc) or "recursion limit" in str(exc):
                fail(i, f"nested deeper than {MAX_NESTING} levels")
            else:
                fail(i, _decode_error(line) or f"invalid JSON: {exc}")
            continue
        if not isinstance(value, dict):
            fail(i, f"not a JSON object (got {type(value).__name__})")
            continue
        if ROW_COLUMN in value:
            fail(i, RESERVED)
            continue
        problem = value_problem(value)
        if problem:
            fail(i, problem)
            continue
        records[i] = value

    def parse(rows: list[int], depth: int = 0) -> None:
        if not rows:
            return
        try:
            part = _read_json(b"\n".join(lines[i] for i in rows), whole=True)
            if part.num_rows != len(rows):
                raise ValueError("row count does not match line count")
        except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError, ValueError) as exc:
            match = _CHANGED.search(str(exc))
            if match and depth < 32:
                path = [p for p in match.group(1).split("/") if p]
                kinds: dict[str, list[int]] = {}
                for i in rows:
                    kinds.setdefault(_json_kind(_at_path(records[i], path)), []).append(i)
                nulls = kinds.pop("null", [])
                if len(kinds) > 1:
                    largest = max(kinds, key=lambda k: len(kinds[k]))
                    kinds[largest] = sorted(kinds[largest] + nulls)
                    for group in kinds.values():
                        parse(group, depth + 1)
                    return
            halve(rows, exc)
            return
        keep(part, rows)

    def halve(rows: list[int], exc: Exception) -> None:
        if len(rows) == 1:
            fail(rows[0], _line_failure(lines[rows[0]], exc))
            return
        mid = len(rows) // 2
        parse(rows[:mid], 32)
        parse(rows[mid:], 32)

    parse(sorted(records))


def _count_per_source(line_map: LineMap, numbers: np.ndarray) -> list[int]:
    counts = np.bincount(line_map.source_index(numbers), minlength=len(line_map.sources))
    return [int(c) for c in counts]


def _merge_alike(chunks: list[Chunk]) -> list[Chunk]:
    """Join chunks of one buffer that share a schema (bisection leaves many), so each
    schema is validated once. They share their lookups: ``__row`` indexes one buffer."""
    by_schema: dict[pa.Schema, list[Chunk]] = {}
    for chunk in chunks:
        by_schema.setdefault(chunk.table.schema, []).append(chunk)
    merged = []
    for group in by_schema.values():
        first = group[0]
        table = pa.concat_tables([c.table for c in group]) if len(group) > 1 else first.table
        merged.append(Chunk(table, first.raw_of, first.origin, first.lines, first.line_map))
    return merged


# --- Python records --------------------------------------------------------------------


def _dumps(record: Any) -> str:
    try:
        return json.dumps(record, default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(record)


def _records_to_table(part: list[dict[str, Any]]) -> pa.Table:
    """Columns over the union of keys (``from_pylist`` would only look at the first
    record and silently drop fields that appear later)."""
    keys: dict[str, None] = {}
    for record in part:
        keys.update(dict.fromkeys(record))
    for key in keys:
        if not isinstance(key, str):
            raise TypeError(f"field name {key!r} is not a string")
    return pa.table({key: pa.array([r.get(key) for r in part]) for key in keys})


def parse_records(records: Iterable[Any], source: str) -> Parsed:
    """Parse an iterable of dicts; records of mixed value types are split into
    homogeneous chunks the same way NDJSON lines are. Records that are not dicts, nest
    too deep or hold bytes are rejected one by one, before any is converted."""
    items = list(records)
    out = Parsed(records=len(items))

    def raw_at(idx: int) -> str:
        return _dumps(items[idx])

    usable: list[int] = []
    for i, rec in enumerate(items):
        if not isinstance(rec, dict):
            out.failures.append(
                (source, None, _dumps(rec), f"not a record (got {type(rec).__name__})")
            )
            continue
        problem = (
            RESERVED
            if ROW_COLUMN in rec
            else value_problem(rec)
            if any(isinstance(v, (dict, list, tuple, *_BINARY)) for v in rec.values())
            else None
        )
        if problem:
            out.failures.append((source, None, _dumps(rec), problem))
            continue
        usable.append(i)

    def go(rows: list[int]) -> None:
        if not rows:
            return
        try:
            table = _records_to_table([items[i] for i in rows])
        except (
            pa.ArrowInvalid,
            pa.ArrowTypeError,
            pa.ArrowNotImplementedError,
            TypeError,
            ValueError,
            OverflowError,
        ) as exc:
            if len(rows) == 1:
                rec = items[rows[0]]
                out.failures.append((source, None, _dumps(rec), f"unreadable record: {exc}"))
                return
            mid = len(rows) // 2
            go(rows[:mid])
            go(rows[mid:])
            return
        numbers = pa.array(np.asarray(rows, np.int64))
        out.chunks.append(Chunk(_with_rows(table, numbers), raw_at, lambda i: (source, None)))

    go(usable)
    return out


# --- Arrow / Polars ----------------------------------------------------------------------


def parse_arrow(table: pa.Table, source: str) -> Parsed:
    """Wrap an Arrow table: it is homogeneous already."""
    out = Parsed(records=table.num_rows)
    if table.num_rows == 0:
        return out

    def raw_at(idx: int) -> str:
        return _dumps(table.slice(idx, 1).to_pylist()[0])

    if ROW_COLUMN in table.column_names:
        out.failures.extend((source, None, raw_at(i), RESERVED) for i in range(table.num_rows))
        return out

    rows = _row_numbers(0, table.num_rows)
    out.chunks.append(Chunk(_with_rows(table, rows), raw_at, lambda i: (source, None)))
    return out


def parse_any(data: Any, source: str) -> Parsed:
    """Dispatch on the input's type."""
    if isinstance(data, pa.Table):
        return parse_arrow(data, source)
    if isinstance(data, pa.RecordBatch):
        return parse_arrow(pa.Table.from_batches([data]), source)
    if isinstance(data, pa.RecordBatchReader):
        return parse_arrow(data.read_all(), source)
    if type(data).__module__.startswith("polars"):
        import polars as pl

        if isinstance(data, pl.LazyFrame):
            data = data.collect()
        if isinstance(data, pl.DataFrame):
            return parse_arrow(data.to_arrow(), source)
    if isinstance(data, (bytes, bytearray, memoryview)):
        return parse_ndjson(bytes(data), source)
    if isinstance(data, dict):
        return parse_records([data], source)
    if isinstance(data, (str,)):
        raise TypeError("write() takes records, Arrow or Polars data; for NDJSON text pass bytes")
    return parse_records(data, source)
