from __future__ import annotations

import pyarrow as pa
import pytest

from writers.parse import BOM, join_files, objects_only, parse_arrow, parse_ndjson, parse_records


def _rows(parsed):  # rows with their line numbers, in source order
    out = []
    for chunk in parsed.chunks:
        for row in chunk.table.to_pylist():
            out.append(
                (chunk.origin(row["__row"])[1], {k: v for k, v in row.items() if k != "__row"})
            )
    return sorted(out, key=lambda r: r[0] or 0)


def test_clean_file_takes_one_chunk_and_numbers_lines() -> None:
    parsed = parse_ndjson(b'{"a":1}\n{"a":2}\n{"a":3}', "f")
    assert parsed.records == 3 and parsed.failures == [] and len(parsed.chunks) == 1
    assert _rows(parsed) == [(1, {"a": 1}), (2, {"a": 2}), (3, {"a": 3})]


def test_bom_crlf_and_blank_lines() -> None:
    parsed = parse_ndjson(b'\xef\xbb\xbf{"a":1}\r\n\r\n\n{"a":2}\r\n', "f")
    assert parsed.records == 2 and parsed.failures == []
    assert _rows(parsed) == [(1, {"a": 1}), (4, {"a": 2})]


def test_bad_lines_are_isolated_with_line_numbers_and_raw_text() -> None:
    data = b"\n".join(
        [b'{"a":1}', b'{"a":', b"[1,2]", b'{"a":2}', b'{"a":"\xff"}', b"42", b'{"a":3}']
    )
    parsed = parse_ndjson(data, "file:///x.ndjson")
    assert parsed.records == 7
    assert [r[0] for r in _rows(parsed)] == [1, 4, 7]
    failures = {line: (raw, reason) for _, line, raw, reason in parsed.failures}
    assert set(failures) == {2, 3, 5, 6}
    assert failures[2][0] == '{"a":' and failures[2][1].startswith("invalid JSON")
    assert "not a JSON object" in failures[3][1]
    assert "invalid UTF-8" in failures[5][1] and failures[5][0] == '{"a":"\\xff"}'
    assert all(src == "file:///x.ndjson" for src, *_ in parsed.failures)


def test_a_type_change_between_lines_splits_into_homogeneous_chunks() -> None:
    parsed = parse_ndjson(b'{"a":1}\n{"a":"x"}\n{"a":2}\n', "f")
    assert parsed.failures == [] and parsed.records == 3
    types = {str(c.table.schema.field("a").type) for c in parsed.chunks}
    assert types == {"int64", "string"}
    assert [r[0] for r in _rows(parsed)] == [1, 2, 3]


def test_naive_timestamp_strings_stay_strings() -> None:
    parsed = parse_ndjson(b'{"t":"2024-01-01 00:00:00"}\n', "f")
    assert parsed.chunks[0].table.schema.field("t").type == pa.string()


def test_records_of_mixed_types_and_non_records() -> None:
    parsed = parse_records([{"a": 1}, {"a": "x"}, 5, {"b": {"c": 1}}], "batch:1")
    assert parsed.records == 4
    assert [(f[3]) for f in parsed.failures] == ["not a record (got int)"]
    assert sum(c.table.num_rows for c in parsed.chunks) == 3


def test_arrow_rows_trace_back_to_raw_json() -> None:
    parsed = parse_arrow(pa.table({"a": [1, 2]}), "batch:b")
    chunk = parsed.chunks[0]
    assert chunk.raw_of(1) == '{"a": 2}' and chunk.origin(1) == ("batch:b", None)


@pytest.mark.parametrize("data", [b"", b"\n\n", b"   \n"])
def test_empty_input(data: bytes) -> None:
    parsed = parse_ndjson(data, "f")
    assert parsed.records == 0 and parsed.chunks == [] and parsed.failures == []


def test_fields_that_only_later_records_carry_are_kept() -> None:
    parsed = parse_records([{"a": 1}, {"a": 2, "b": "late field"}], "batch:1")
    assert parsed.failures == []
    table = parsed.chunks[0].table
    assert table.column("b").to_pylist() == [None, "late field"]


def test_joined_files_map_rows_and_failures_back_to_their_file_and_line() -> None:
    parts = [
        ("file:///a", b'\xef\xbb\xbf{"a":1}\n{"a":2}'),  # BOM, no final newline
        ("file:///empty", b""),
        ("file:///b", b'\n{"a":3}\n{broken\n{"a":4}\n'),
        ("file:///c", b'{"a":"x"}\n'),
    ]
    data, line_map = join_files(parts)
    parsed = parse_ndjson(data, line_map)
    assert parsed.records == 6 and parsed.per_source == [2, 0, 3, 1]
    assert [(f[0], f[1], f[2]) for f in parsed.failures] == [("file:///b", 3, "{broken")]
    found = sorted(
        (chunk.origin(r)[0], chunk.origin(r)[1], row["a"])
        for chunk in parsed.chunks
        for r, row in zip(
            chunk.table.column("__row").to_pylist(), chunk.table.to_pylist(), strict=True
        )
    )
    assert found == [
        ("file:///a", 1, 1),
        ("file:///a", 2, 2),
        ("file:///b", 2, 3),
        ("file:///b", 4, 4),
        ("file:///c", 1, "x"),
    ]
    import numpy as np

    for chunk in parsed.chunks:
        rows = chunk.table.column("__row").to_numpy()
        names = [line_map.sources[i] for i in chunk.source_index(rows)]
        assert names == [chunk.origin(int(r))[0] for r in rows]
    assert line_map.locate(1) == ("file:///a", 1) and np.asarray(line_map.starts).tolist() == [
        1,
        3,
        3,
        7,
    ]


@pytest.mark.parametrize(
    "first", [b"null", b"true", b"1", b'"x"', b"[1]", b" null", b"\r", b"\xef\xbb\xbfnull"]
)
def test_a_buffer_that_does_not_start_with_an_object_is_parsed_line_by_line(first: bytes) -> None:
    """pyarrow.json crashes the process on a buffer that begins with ``null``: such
    buffers never reach it whole."""
    good = b'{"event_id":"e1","user_id":"u","event_type":"v","client_ts":"2024-05-01T10:00:00Z"}'
    data = first + b"\n" + good + b"\n"
    assert not objects_only(data) and objects_only(good + b"\n\n" + good)
    parsed = parse_ndjson(data, "file:///zone/a.ndjson")
    rows = sum(c.table.num_rows for c in parsed.chunks)
    assert rows == 1
    if first.strip(b" \r\xef\xbb\xbf"):
        assert [(f[1], f[3].split(" (")[0]) for f in parsed.failures] == [(1, "not a JSON object")]


def test_a_second_bom_is_treated_alike_wherever_the_file_lands_in_a_buffer() -> None:
    """join_files drops one BOM per file; a second one is a stray character at the start
    of the first line, for the first file of a buffer as for the others."""
    line = b'{"event_id":"e1","user_id":"u","event_type":"v","client_ts":"2024-05-01T10:00:00Z"}\n'
    data, line_map = join_files([("a", BOM + BOM + line), ("b", BOM + BOM + line)])
    parsed = parse_ndjson(data, line_map)
    assert sum(c.table.num_rows for c in parsed.chunks) == 0
    assert sorted((f[0], f[1]) for f in parsed.failures) == [("a", 1), ("b", 1)]
