from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from writers.normalize import normalize
from writers.parse import MAX_NESTING, ROW_COLUMN, parse_ndjson, parse_records

NOW = datetime(2024, 5, 2, tzinfo=UTC)
SKEW = timedelta(hours=1)


def run(records: list[dict]) -> tuple[list[dict], dict[int, str]]:
    parsed = parse_records(records, "batch:t")
    valid: list[dict] = []
    rejected: dict[int, str] = {}
    for chunk in parsed.chunks:
        result = normalize(chunk.table, receipt_time=NOW, max_future_skew=SKEW)
        valid.extend(result.table.to_pylist())
        rejected.update(dict(result.rejected))
    return sorted(valid, key=lambda r: r["__row"]), rejected


def base(**kw: object) -> dict:
    return {
        "event_id": "e1",
        "user_id": "u1",
        "event_type": "view",
        "client_ts": "2024-05-01T10:00:00Z",
        **kw,
    }


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-05-01T10:00:00Z", datetime(2024, 5, 1, 10, tzinfo=UTC)),
        ("2024-05-01T12:30:00.123456+02:30", datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=UTC)),
        ("2024-05-01T10:00:00.5+00:00", datetime(2024, 5, 1, 10, 0, 0, 500000, tzinfo=UTC)),
        (1714557600000, datetime(2024, 5, 1, 10, tzinfo=UTC)),
    ],
)
def test_timestamps_become_utc_microseconds(value: object, expected: datetime) -> None:
    valid, rejected = run([base(client_ts=value)])
    assert rejected == {}
    assert valid[0]["client_ts"] == expected


def test_server_ts_defaults_to_receipt_time() -> None:
    valid, _ = run([base()])
    assert valid[0]["server_ts"] == NOW


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (base(client_ts="2024-05-01T10:00:00"), "no UTC offset"),
        (base(client_ts="yesterday"), "not an ISO-8601 timestamp"),
        (base(client_ts=None), "missing required field client_ts"),
        (
            {"event_id": "e1", "user_id": "u1", "client_ts": "2024-05-01T10:00:00Z"},
            "missing required field event_type",
        ),
        (base(event_id=""), "event_id is empty"),
        (base(user_id=42), "user_id: expected a string, got int64"),
        (base(client_ts="2024-05-02T01:00:01Z"), "after its receipt time"),
        (base(client_ts="1999-12-31T23:00:00Z"), "before 2000-01-01"),
        (base(server_ts="2024-05-03T00:00:00Z"), "server_ts is in the future"),
        (base(client_ts=[1]), "client_ts: expected an ISO-8601 string or epoch milliseconds"),
        (base(score=float("nan")), "NaN or Infinity"),
        (base(properties=7), "properties: expected a JSON object"),
    ],
)
def test_bad_records_are_rejected_with_a_reason(record: dict, reason: str) -> None:
    valid, rejected = run([record, base(event_id="ok")])
    assert [v["event_id"] for v in valid] == ["ok"]
    assert list(rejected) == [0]
    assert reason in rejected[0]


def test_skew_boundary_is_inclusive() -> None:
    valid, rejected = run([base(client_ts="2024-05-02T01:00:00Z")])
    assert rejected == {} and len(valid) == 1


def test_nested_values_and_odd_names_fold_into_properties() -> None:
    valid, rejected = run(
        [
            base(
                properties={"page": "/a"},
                device={"os": "ios"},
                **{"Bad Name": 1},
                platform="ios",
                n=3,
            )
        ]
    )
    assert rejected == {}
    row = valid[0]
    assert json.loads(row["properties"]) == {"page": "/a", "device": {"os": "ios"}, "Bad Name": 1}
    assert row["platform"] == "ios" and row["n"] == 3


def test_properties_text_is_kept_and_merged_without_loss() -> None:
    valid, _ = run([base(properties='{"page":"/a","device":1}', device={"os": "x"})])
    assert json.loads(valid[0]["properties"]) == {
        "page": "/a",
        "device": 1,
        "device__top_level": {"os": "x"},
    }


def test_struct_union_keys_do_not_leak_between_rows() -> None:
    data = b"\n".join(
        json.dumps(r).encode()
        for r in [
            base(event_id="a", properties={"x": 1}),
            base(event_id="b", properties={"y": 2}),
            base(event_id="c", properties={}),
        ]
    )
    chunk = parse_ndjson(data, "f").chunks[0]
    out = normalize(chunk.table, receipt_time=NOW, max_future_skew=SKEW).table
    assert [json.loads(p) for p in out.column("properties").to_pylist()] == [{"x": 1}, {"y": 2}, {}]


def test_arrow_timestamps_need_a_zone() -> None:
    table = pa.table(
        {
            "event_id": ["a"],
            "user_id": ["u"],
            "event_type": ["v"],
            "client_ts": pa.array([datetime(2024, 5, 1)], pa.timestamp("ns")),
        }
    )
    from writers.parse import parse_arrow

    result = normalize(
        parse_arrow(table, "b").chunks[0].table, receipt_time=NOW, max_future_skew=SKEW
    )
    assert result.table.num_rows == 0
    assert "no time zone" in result.rejected[0][1]


# --- values no column or JSON text can hold (found by the reliability campaign) ---------


def _deep(levels: int) -> dict:
    value: object = 1
    for _ in range(levels):
        value = {"a": value}
    assert isinstance(value, dict)
    return value


def test_a_deeply_nested_ndjson_line_is_rejected_and_the_others_kept() -> None:
    deep = json.dumps(base(event_id="deep"))[:-1] + ',"properties":'
    deep += '{"a":' * 1500 + "1" + "}" * 1500 + "}"  # (too deep for json.dumps itself)
    ok_nested = json.dumps(base(event_id="ok", properties=_deep(MAX_NESTING - 2)))
    data = "\n".join([json.dumps(base(event_id="e0")), deep, ok_nested]).encode()
    parsed = parse_ndjson(data, "file:///zone/f.ndjson")
    assert parsed.records == 3
    assert [(f[1], f[3]) for f in parsed.failures] == [
        (2, f"nested deeper than {MAX_NESTING} levels")
    ]
    ids = []
    for chunk in parsed.chunks:
        result = normalize(chunk.table, receipt_time=NOW, max_future_skew=SKEW)
        assert result.rejected == []
        ids += result.table.column("event_id").to_pylist()
        props = result.table.column("properties").to_pylist()
        assert all(p is None or isinstance(json.loads(p), dict) for p in props)
    assert sorted(ids) == ["e0", "ok"]


def test_nesting_just_past_the_limit_is_rejected_with_its_reason() -> None:
    line = json.dumps(base(event_id="x", properties=_deep(MAX_NESTING + 5)))
    parsed = parse_ndjson(("\n".join([json.dumps(base()), line])).encode(), "f")
    assert [(f[1], f[3]) for f in parsed.failures] == [
        (2, f"nested deeper than {MAX_NESTING} levels")
    ]
    valid, rejected = run([base(event_id="r1"), base(event_id="r2", extra=_deep(200))])
    assert [r["event_id"] for r in valid] == ["r1"]
    assert rejected == {}  # the record was refused while parsing:
    refused = parse_records([base(event_id="r2", extra=_deep(200))], "batch:t").failures
    assert [f[3] for f in refused] == [f"nested deeper than {MAX_NESTING} levels"]


def test_arrow_input_nested_too_deep_or_binary_is_rejected_per_row() -> None:
    deep_type: pa.DataType = pa.int64()
    for _ in range(MAX_NESTING + 1):
        deep_type = pa.struct([("a", deep_type)])
    table = pa.table(
        {
            "event_id": ["a", "b", "c"],
            "user_id": ["u"] * 3,
            "event_type": ["v"] * 3,
            "client_ts": ["2024-05-01T10:00:00Z"] * 3,
            "blob": pa.array([None, b"\x00\x01", None], pa.binary()),
            "deep": pa.array([None, None, _deep(MAX_NESTING + 1)], deep_type),
            ROW_COLUMN: pa.array([0, 1, 2], pa.int64()),
        }
    )
    result = normalize(table, receipt_time=NOW, max_future_skew=SKEW)
    assert result.table.column("event_id").to_pylist() == ["a"]
    assert dict(result.rejected) == {
        1: "blob: binary data is not accepted (decode bytes to text first)",
        2: f"deep: nested deeper than {MAX_NESTING} levels",
    }


def test_bytes_are_rejected_and_the_writer_goes_on(home) -> None:
    from lakehouse.settings import Settings
    from writers import EventWriter

    with EventWriter(Settings.from_env()) as writer:
        writer.write(
            [base(event_id="b1", extra=b"ab"), base(event_id="b2", properties={"k": b"x"})]
        )
        writer.write([base(event_id="b3")])
        result = writer.flush()
    assert (result.records_read, result.records_written, result.records_rejected) == (3, 1, 2)


@pytest.mark.parametrize("text", ["not json", "[1,2]", '"a"', "", "{}{}", '{"a":NaN}', "{'a':1}"])
def test_properties_text_must_be_one_json_object(text: str) -> None:
    valid, rejected = run(
        [base(event_id="ok", properties='{"a":1}'), base(event_id="x", properties=text)]
    )
    assert [r["event_id"] for r in valid] == ["ok"]
    assert rejected == {1: "properties: not JSON object text"}


def test_a_trailing_newline_is_not_a_plain_column_name() -> None:
    from writers.normalize import is_plain_name

    assert is_plain_name("platform") and not is_plain_name("platform\n")
    valid, _ = run([base(**{"platform\n": "ios"})])
    assert "platform\n" not in valid[0] and json.loads(valid[0]["properties"]) == {
        "platform\n": "ios"
    }
