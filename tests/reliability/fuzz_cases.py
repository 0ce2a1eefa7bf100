"""Hypothesis strategies of bad input for :mod:`tests.reliability.fuzz`: NDJSON lines
tagged with what each must become, files (gzip, truncated gzip, BOM, CRLF, no final
newline, empty), and Python records of odd types."""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

SAFE_DEPTH = 200  # polars segfaults near 1000 levels (writers/fold.py json_objects)
# Extra columns created before fuzzing, so a fuzzed value's type never decides them.
WARM_UP = {"platform": "ios", "score": 1.5, "count": 3, "flag": True}


@dataclass
class Line:
    data: bytes
    expect: str  # accept | reject | resend | blank | either
    event_id: str | None = None
    record: dict[str, Any] | None = None


@dataclass
class FileCase:
    lines: list[Line]
    gzip: bool = False
    truncate_at: float | None = None  # fraction of the gzip bytes kept
    bom: bool = False
    crlf: bool = False
    final_newline: bool = True

    def payload(self) -> bytes:
        sep = b"\r\n" if self.crlf else b"\n"
        data = sep.join(line.data for line in self.lines)
        if self.final_newline and self.lines:
            data += sep
        if self.bom:
            data = b"\xef\xbb\xbf" + data
        if self.gzip:
            data = gzip.compress(data)
            if self.truncate_at is not None:
                data = data[: max(10, int(len(data) * self.truncate_at))]
        return data


def _valid(event_id: str, draw: Any) -> dict[str, Any]:
    text = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=20)
    record: dict[str, Any] = {
        "event_id": event_id,
        "user_id": draw(text),
        "event_type": draw(
            st.one_of(text, st.sampled_from(["a'b", "c;d", "../x", '"; DROP TABLE t; --']))
        ),
        "client_ts": draw(
            st.sampled_from(
                [
                    "2024-05-01T10:00:00Z",
                    "2024-05-01T10:59:59.999999+00:00",
                    "2023-12-31T23:30:00-05:00",
                ]
            )
        ),
    }
    if draw(st.booleans()):
        record["server_ts"] = "2024-05-03T00:00:00Z"
    if draw(st.booleans()):
        record["properties"] = draw(
            st.dictionaries(
                st.text(max_size=8),
                st.one_of(st.integers(-(2**53), 2**53), text, st.booleans(), st.none()),
                max_size=4,
            )
        )
    if draw(st.booleans()):
        record["platform"] = draw(text)
    if draw(st.booleans()):
        record["score"] = draw(
            st.one_of(
                st.floats(allow_nan=False, allow_infinity=False, width=32), st.integers(-1000, 1000)
            )
        )
    return record


def _dumps(record: dict[str, Any]) -> bytes:
    return json.dumps(record, ensure_ascii=False).encode()


ID = "@ID@"  # replaced by a token unique to the example when it is written


@st.composite
def line_cases(draw: Any) -> Line:
    event_id = f"{ID}-{draw(st.integers(0, 10**9))}"
    kind = draw(st.sampled_from([
        "valid", "valid", "valid", "invalid_utf8", "not_json", "not_object", "missing", "wrong_type",
        "nan_inf", "bad_ts", "dup_keys", "deep", "long", "big_int", "surrogate", "blank", "nul", "bom_line",
    ]))  # fmt: skip
    record = _valid(event_id, draw)
    if kind == "valid":
        return Line(_dumps(record), "accept", event_id, record)
    if kind == "long":
        record["properties"] = {"blob": "x" * draw(st.integers(10_000, 300_000))}
        return Line(_dumps(record), "accept", event_id, record)
    if kind == "nul":
        record["properties"] = {"k": "a\x00b"}
        return Line(_dumps(record), "accept", event_id, record)
    if kind == "invalid_utf8":
        data = _dumps(record)
        at = data.index(b'"user_id"')
        return Line(data[:at] + b'"junk": "\xff\xc3(", ' + data[at:], "reject", event_id)
    if kind == "not_json":
        data = _dumps(record)
        return Line(data[: draw(st.integers(1, len(data) - 1))], "reject", event_id)
    if kind == "not_object":
        return Line(
            draw(st.sampled_from([b"[1, 2]", b'"text"', b"42", b"null", b"true", b"[]"])), "reject"
        )
    if kind == "missing":
        del record[draw(st.sampled_from(["event_id", "user_id", "event_type", "client_ts"]))]
        return Line(_dumps(record), "reject", event_id if "event_id" in record else None)
    if kind == "wrong_type":
        name = draw(
            st.sampled_from(["event_id", "user_id", "event_type", "client_ts", "count", "flag"])
        )
        wrong = {
            "count": ["text", True, 2.5],
            "flag": ["text", 1, 2.5],
            "client_ts": [{"a": 1}, [1], True],
        }
        record[name] = draw(st.sampled_from(wrong.get(name, [{"a": 1}, [1], True, 12])))
        return Line(_dumps(record), "reject", event_id if name != "event_id" else None)
    if kind == "nan_inf":
        where = draw(st.sampled_from(["client_ts", "score", "properties"]))
        token = draw(st.sampled_from(["NaN", "Infinity", "-Infinity"]))
        record[where] = "@@"
        data = _dumps(record).replace(
            b'"@@"', token.encode() if where != "properties" else b'{"x": ' + token.encode() + b"}"
        )
        return Line(data, "either" if where == "properties" else "reject", event_id)
    if kind == "bad_ts":
        record["client_ts"] = draw(st.sampled_from([
            "1999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "2024-02-30T00:00:00Z",
            "2024-05-01T25:00:00Z", "2024-05-01T10:00:00", "yesterday", "", -1, 1e300, 2**63, 946684799999,
        ]))  # fmt: skip
        return Line(_dumps(record), "reject", event_id)
    if kind == "dup_keys":
        data = _dumps(record)
        return Line(data[:-1] + b', "event_type": "again"}', "either", event_id)
    if kind == "deep":
        depth = draw(st.integers(2, SAFE_DEPTH))
        record["properties"] = "@@"
        nested = b'{"a":' * depth + b"1" + b"}" * depth
        return Line(_dumps(record).replace(b'"@@"', nested), "either", event_id)
    if kind == "big_int":
        record["huge"] = "@@"
        return Line(
            _dumps(record).replace(b'"@@"', str(draw(st.integers(2**64, 2**200))).encode()),
            "either",
            event_id,
        )
    if kind == "surrogate":
        record["properties"] = "@@"
        return Line(_dumps(record).replace(b'"@@"', b'{"s": "\\ud800"}'), "either", event_id)
    if kind == "bom_line":
        return Line(b"\xef\xbb\xbf" + _dumps(record), "either", event_id)
    return Line(draw(st.sampled_from([b"", b"   ", b"\t"])), "blank")


@st.composite
def file_cases(draw: Any) -> FileCase:
    lines = draw(st.lists(line_cases(), max_size=12))
    ids = [line.event_id for line in lines if line.event_id]
    if len(ids) != len(set(ids)):  # ids drawn twice: keep the first line of each
        seen: set[str] = set()
        lines = [
            ln
            for ln in lines
            if not ln.event_id or (ln.event_id not in seen and not seen.add(ln.event_id))
        ]
    accepted = [ln for ln in lines if ln.expect == "accept"]
    for _ in range(draw(st.integers(0, 2)) if accepted else 0):
        original = draw(st.sampled_from(accepted))
        lines.insert(
            draw(st.integers(0, len(lines))),
            Line(original.data, "resend", original.event_id, original.record),
        )
    gz = draw(st.booleans())
    return FileCase(
        lines,
        gzip=gz,
        truncate_at=draw(st.one_of(st.none(), st.floats(0.1, 0.95))) if gz else None,
        bom=draw(st.booleans()),
        crlf=draw(st.booleans()),
        final_newline=draw(st.booleans()),
    )


def landing_cases() -> st.SearchStrategy[list[FileCase]]:
    return st.lists(file_cases(), min_size=1, max_size=3)


def unique(files: list[FileCase], token: str) -> list[FileCase]:
    """The example with its ids made unique (hypothesis replays and shrinks examples)."""
    mark = ID.encode()

    def fix(line: Line) -> Line:
        event_id = line.event_id.replace(ID, token) if line.event_id else None
        record = {**line.record, "event_id": event_id} if line.record else None
        return Line(line.data.replace(mark, token.encode()), line.expect, event_id, record)

    return [
        FileCase([fix(ln) for ln in f.lines], f.gzip, f.truncate_at, f.bom, f.crlf, f.final_newline)
        for f in files
    ]


# No bytes values: they crash the writer (known_bugs.bytes_value_panics).
_ODD = st.one_of(
    st.floats(), st.integers(-(2**80), 2**80), st.none(), st.text(max_size=30),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.floats(), max_size=2),
    st.datetimes(), st.datetimes(timezones=st.timezones()), st.decimals(allow_nan=True), st.booleans(),
)  # fmt: skip


@st.composite
def record_batches(draw: Any) -> list[Any]:
    """Python records as a caller might hand them over, valid or not."""
    out: list[Any] = []
    for i in range(draw(st.integers(1, 8))):
        record: Any = {
            "event_id": f"rec-{draw(st.integers(0, 10**12))}-{i}",
            "user_id": "u",
            "event_type": "v",
            "client_ts": "2024-05-01T10:00:00Z",
        }
        for _ in range(draw(st.integers(0, 3))):
            record[
                draw(
                    st.sampled_from(
                        [
                            "event_id",
                            "user_id",
                            "event_type",
                            "client_ts",
                            "server_ts",
                            "properties",
                            "session_id",
                            "extra",
                            "Odd Key",
                        ]
                    )
                )
            ] = draw(_ODD)
        if draw(st.integers(0, 20)) == 0:
            record = draw(st.sampled_from([None, 42, "text", [record], {1: "int key"}]))
        out.append(record)
    return out
