from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from writers.normalize import normalize
from writers.parse import parse_ndjson, parse_records

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
