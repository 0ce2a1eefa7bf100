"""The normaliser's rules at their edges, each reason checked as its whole text.

Inputs are built as typed Arrow columns (the shape a parsed chunk has), so each rule is
reached directly; expected values are worked out by hand from the rules in the module's
docstring (UTC microseconds, the first reason of a row wins, nothing coerced)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from writers.normalize import Normalized, is_plain_name, normalize, not_object_texts
from writers.parse import MAX_NESTING, ROW_COLUMN, type_depth

NOW = datetime(2024, 5, 2, tzinfo=UTC)
SKEW = timedelta(hours=1)
TS = pa.timestamp("us", tz="UTC")
SKEW_REASON = "client_ts is more than 1:00:00 after its receipt time (device clock skew)"


def _norm(columns: dict[str, Any], **kw: Any) -> Normalized:
    """Normalise typed columns; ids, users and types default to valid strings."""
    n = len(next(iter(columns.values())))
    base: dict[str, Any] = {
        "event_id": pa.array([f"e{i}" for i in range(n)], pa.string()),
        "user_id": pa.array(["u"] * n, pa.string()),
        "event_type": pa.array(["view"] * n, pa.string()),
    }
    base.update(columns)
    base[ROW_COLUMN] = pa.array(range(n), pa.int64())
    kw.setdefault("receipt_time", NOW)
    kw.setdefault("max_future_skew", SKEW)
    return normalize(pa.table(base), **kw)


def _ts(*values: str | None) -> pa.Array:
    return pa.array(values, pa.string())


def _kept(result: Normalized) -> list[int]:
    return result.table.column(ROW_COLUMN).to_pylist()


def test_each_reason_is_its_whole_text() -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        (
            {"client_ts": _ts("2024-05-01T10:00:00")},
            "client_ts: timestamp has no UTC offset (add Z or +hh:mm): '2024-05-01T10:00:00'",
        ),
        ({"client_ts": _ts("yesterday")}, "client_ts: not an ISO-8601 timestamp: 'yesterday'"),
        ({"client_ts": _ts(None)}, "missing required field client_ts"),
        ({"client_ts": pa.nulls(1)}, "missing required field client_ts"),
        (
            {"client_ts": _ts("2024-05-01T10:00:00Z"), "event_id": _ts(None)},
            "missing required field event_id",
        ),
        (
            {"client_ts": _ts("2024-05-01T10:00:00Z"), "user_id": _ts("")},
            "user_id is empty",
        ),
        (
            {"client_ts": _ts("2024-05-01T10:00:00Z"), "event_type": _ts("")},
            "event_type is empty",
        ),
        (
            {"client_ts": _ts("2024-05-01T10:00:00Z"), "user_id": pa.array([42])},
            "user_id: expected a string, got int64",
        ),
        ({"client_ts": _ts("2024-05-02T01:00:01Z")}, SKEW_REASON),
        ({"client_ts": _ts("1999-12-31T23:59:59Z")}, "client_ts is before 2000-01-01"),
        (
            {"client_ts": _ts("2024-05-01T10:00:00Z"), "server_ts": _ts("2024-05-02T01:00:01Z")},
            "server_ts is in the future",
        ),
        (
            {"client_ts": pa.array([True])},
            "client_ts: expected an ISO-8601 string or epoch milliseconds, got bool",
        ),
        (
            {"client_ts": pa.array([datetime(2024, 5, 1)], pa.timestamp("ms"))},
            "client_ts: timestamp has no time zone",
        ),
        ({"client_ts": pa.array([float("inf")])}, "client_ts: not a finite number"),
        ({"client_ts": pa.array([2**53])}, "client_ts: epoch milliseconds out of range"),
        (
            {"client_ts": _ts("2024-05-01T10:00:00Z"), "score": pa.array([float("nan")])},
            "score: NaN or Infinity is not a valid value",
        ),
        (
            {"client_ts": _ts("2024-05-01T10:00:00Z"), "properties": pa.array([7])},
            "properties: expected a JSON object, got int64",
        ),
        (
            {"client_ts": _ts("2024-05-01T10:00:00Z"), "properties": _ts("[1]")},
            "properties: not JSON object text",
        ),
    ]
    for columns, reason in cases:
        result = _norm(columns)
        assert (result.table.num_rows, result.rejected) == (0, [(0, reason)]), columns


def test_missing_columns_are_named_and_the_first_reason_wins() -> None:
    table = pa.table({"user_id": ["u"], ROW_COLUMN: pa.array([0], pa.int64())})
    result = normalize(table, receipt_time=NOW, max_future_skew=SKEW)
    assert result.rejected == [(0, "missing required field event_id")]
    # a null id has no length: it is missing, not empty
    result = _norm({"client_ts": _ts(None), "event_id": _ts(None)})
    assert result.rejected == [(0, "missing required field event_id")]


def test_an_empty_session_id_is_kept_and_the_string_columns_are_large() -> None:
    result = _norm({"client_ts": _ts("2024-05-01T10:00:00Z"), "session_id": _ts("")})
    assert result.rejected == []
    assert result.table.column("session_id").to_pylist() == [""]
    for name in ("event_id", "user_id", "event_type", "session_id"):
        assert result.table.schema.field(name).type == pa.large_string()
    # a column of nulls only is missing, whatever its type
    result = _norm({"client_ts": _ts("2024-05-01T10:00:00Z"), "session_id": pa.nulls(1)})
    assert result.rejected == [] and result.table.column("session_id").to_pylist() == [None]


def test_epoch_milliseconds_at_their_bounds() -> None:
    ms = 1714557600000  # 2024-05-01T10:00:00Z
    exact = datetime(2024, 5, 1, 10, tzinfo=UTC)
    result = _norm({"client_ts": pa.array([ms, ms + 1], pa.int64())})
    assert result.table.column("client_ts").to_pylist() == [
        exact,
        exact + timedelta(milliseconds=1),
    ]
    floats = _norm({"client_ts": pa.array([ms + 0.4, ms + 0.0015], pa.float64())})
    assert floats.rejected == []
    assert floats.table.column("client_ts").to_pylist() == [
        exact + timedelta(microseconds=400),
        exact + timedelta(microseconds=2),  # 1.5 µs rounds to even
    ]
    assert floats.table.schema.field("client_ts").type == TS
    # just inside the integer bound: a valid number, then too far in the future
    edge = _norm({"client_ts": pa.array([2**53 - 1, -(2**53) + 1, -(2**53)], pa.int64())})
    assert edge.rejected == [
        (0, SKEW_REASON),
        (1, "client_ts is before 2000-01-01"),
        (2, "client_ts: epoch milliseconds out of range"),
    ]
    nan = _norm({"client_ts": pa.array([float("nan"), float(ms)], pa.float64())})
    assert nan.rejected == [(0, "client_ts: not a finite number")]
    assert nan.table.column("client_ts").to_pylist() == [exact]


def test_zoned_arrow_timestamps_become_utc_microseconds() -> None:
    ns = pa.array([1714557600123456789], pa.timestamp("ns", tz="+02:00"))
    result = _norm({"client_ts": ns})
    assert result.rejected == []
    assert result.table.column("client_ts").to_pylist() == [
        datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=UTC)
    ]
    large = _norm({"client_ts": pa.array(["2024-05-01T10:00:00+01:00"], pa.large_string())})
    assert large.table.column("client_ts").to_pylist() == [datetime(2024, 5, 1, 9, tzinfo=UTC)]


def test_a_column_of_mixed_timestamps_keeps_the_good_ones() -> None:
    long_bad = "x" * 100
    column = _ts(
        "2024-05-01T10:00:00Z",
        " 2024-05-01T11:00:00+00:00 ",  # spaces around: read one by one, accepted
        long_bad,
        None,
        "2024-05-01 12:00+01:00",
        "2024-05-01T10:00:00",
    )
    result = _norm({"client_ts": column})
    assert result.rejected == [
        (2, f"client_ts: not an ISO-8601 timestamp: {'x' * 64!r}"),
        (3, "missing required field client_ts"),
        (5, "client_ts: timestamp has no UTC offset (add Z or +hh:mm): '2024-05-01T10:00:00'"),
    ]
    assert _kept(result) == [0, 1, 4]
    assert result.table.column("client_ts").to_pylist() == [
        datetime(2024, 5, 1, 10, tzinfo=UTC),
        datetime(2024, 5, 1, 11, tzinfo=UTC),
        datetime(2024, 5, 1, 11, tzinfo=UTC),
    ]
    # every value odd (none well formed): all read one by one
    odd = _norm({"client_ts": _ts(" 2024-05-01T10:00:00Z", "nope")})
    assert odd.rejected == [(1, "client_ts: not an ISO-8601 timestamp: 'nope'")]
    assert odd.table.column("client_ts").to_pylist() == [datetime(2024, 5, 1, 10, tzinfo=UTC)]


def test_server_ts_and_the_skew_boundaries() -> None:
    client = _ts("2024-05-02T01:00:00Z", "2024-05-01T10:00:00Z", "2024-05-01T10:00:00Z")
    server = _ts(None, "2024-05-02T01:00:00Z", "2024-05-01T08:59:59Z")
    result = _norm({"client_ts": client, "server_ts": server})
    # exactly the skew after the receipt time is accepted; a client_ts more than the
    # skew after its own server_ts is not
    assert result.rejected == [(2, SKEW_REASON)]
    assert result.table.column("server_ts").to_pylist() == [
        NOW,
        datetime(2024, 5, 2, 1, tzinfo=UTC),
    ]
    on_2000 = _norm({"client_ts": _ts("2000-01-01T00:00:00Z")})
    assert on_2000.rejected == []


def test_one_receipt_time_per_row() -> None:
    receipts = pa.array([datetime(2024, 5, 1, 9, tzinfo=UTC), NOW], TS)
    client = _ts("2024-05-01T10:00:01Z", "2024-05-01T10:00:01Z")
    result = _norm({"client_ts": client}, receipt_time=receipts)
    assert result.rejected == [(0, SKEW_REASON)]
    assert result.table.column("server_ts").to_pylist() == [NOW]


def test_an_estimated_receipt_time_checks_against_now() -> None:
    late_receipt = datetime(2020, 1, 1, tzinfo=UTC)  # a file's old modification time
    future = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    client = _ts("2024-05-01T10:00:00Z", future, "2024-05-01T10:00:00Z", "2024-05-01T12:00:00Z")
    server = _ts(None, None, future, "2024-05-01T10:00:00Z")
    result = _norm(
        {"client_ts": client, "server_ts": server},
        receipt_time=late_receipt,
        receipt_estimated=True,
    )
    assert result.rejected == [
        (1, SKEW_REASON),
        (2, "server_ts is in the future"),
        (3, SKEW_REASON),
    ]
    # a client_ts after the estimated receipt time is no clock skew; server_ts defaults to it
    assert result.table.column("server_ts").to_pylist() == [late_receipt]
    plain = _norm({"client_ts": client[:1]}, receipt_time=late_receipt)
    assert plain.rejected == [(0, SKEW_REASON)]


def test_plain_names_and_scalar_columns() -> None:
    assert is_plain_name("a" * 128) and not is_plain_name("a" * 129)
    assert is_plain_name("_x") and not is_plain_name("__x") and not is_plain_name("9a")
    assert not is_plain_name("Name") and not is_plain_name("")
    zoned = pa.array([datetime(2024, 1, 1, tzinfo=UTC)], TS)
    columns: dict[str, Any] = {
        "client_ts": _ts("2024-05-01T10:00:00Z"),
        "flag": pa.array([True]),
        "count": pa.array([3], pa.int16()),
        "ratio": pa.array([0.5], pa.float32()),
        "name": _ts("n"),
        "big": pa.array(["b"], pa.large_string()),
        "at": zoned,
        "naive": pa.array([datetime(2024, 1, 1)], pa.timestamp("us")),
        "day": pa.array([datetime(2024, 1, 1).date()], pa.date32()),
        "tags": pa.array([["a"]]),
        "nothing": pa.nulls(1),
        "a" * 129: pa.array([1]),
    }
    result = _norm(columns)
    assert result.rejected == []
    assert result.table.column_names == [
        "event_id", "user_id", "event_type", "client_ts", "server_ts", "session_id",
        "properties", "flag", "count", "ratio", "name", "big", "at", ROW_COLUMN,
    ]  # fmt: skip
    assert result.table.schema.field("count").type == pa.int16()
    assert result.table.schema.field("at").type == TS
    folded = json.loads(result.table.column("properties")[0].as_py())
    assert sorted(folded) == sorted(["naive", "day", "tags", "a" * 129])
    assert folded["tags"] == ["a"] and folded["a" * 129] == 1


def test_not_object_texts_of_every_shape() -> None:
    texts = pa.array(
        [
            None,
            '{"a":1}',
            "x",
            None,
            "{}",
            '{"a":\n1}',
            '{"a":\r1}',
            '{"a":"NaN"}',
            '{"a":Infinity}',
            "",
            "{",
            "}",
            '{"a":1}{"b":2}',
            "[]",
        ],
        pa.string(),
    )
    assert not_object_texts(texts).tolist() == [2, 8, 9, 10, 11, 12, 13]
    assert not_object_texts(pa.array(['{"a":1}', "{}"], pa.large_string())).tolist() == []
    assert not_object_texts(pa.array([None, None], pa.string())).tolist() == []
    assert not_object_texts(pa.array(["{x}", "{}"], pa.string())).tolist() == [0]
    sliced = pa.array(["x", "{}", "y", '{"b":2}'], pa.string()).slice(1)
    assert not_object_texts(sliced).tolist() == [1]


def test_not_object_texts_of_a_large_array_in_two_halves() -> None:
    n = 200_002
    values = [f'{{"k":{i}}}' for i in range(n)]
    for at in (3, 100_000, 100_001, n - 1):
        values[at] = "oops"
    found = not_object_texts(pa.array(values, pa.string()))
    assert isinstance(found, np.ndarray)
    assert found.tolist() == [3, 100_000, 100_001, n - 1]


def test_properties_of_every_type_with_folded_fields() -> None:
    ts = _ts(*["2024-05-01T10:00:00Z"] * 4)
    struct = pa.array([{"a": 1}, None, {"a": 2}, {"a": None}], pa.struct([("a", pa.int64())]))
    extra = pa.array([{"x": 1}, {"x": 2}, None, None], pa.struct([("x", pa.int64())]))
    result = _norm({"client_ts": ts, "properties": struct, "extra": extra})
    assert result.rejected == []
    assert [json.loads(p) if p else p for p in result.table.column("properties").to_pylist()] == [
        {"a": 1, "extra": {"x": 1}},
        {"extra": {"x": 2}},
        {"a": 2},
        {},
    ]
    # the same key inside and outside: merged without loss
    same = pa.array([{"extra": 1}], pa.struct([("extra", pa.int64())]))
    merged = _norm({"client_ts": ts[:1], "properties": same, "extra": extra[:1]})
    assert json.loads(merged.table.column("properties")[0].as_py()) == {
        "extra": 1,
        "extra__top_level": {"x": 1},
    }
    empty = pa.array([{}, None], pa.struct([]))
    out = _norm({"client_ts": ts[:2], "properties": empty}).table.column("properties")
    assert out.to_pylist() == ["{}", None]
    mapped = pa.array([[("k", "v")], None], pa.map_(pa.string(), pa.string()))
    out = _norm({"client_ts": ts[:2], "properties": mapped}).table.column("properties")
    assert [json.loads(p) if p else p for p in out.to_pylist()] == [{"k": "v"}, None]
    texts = _norm({"client_ts": ts[:2], "properties": _ts('{"p":1}', None)})
    assert texts.table.column("properties").to_pylist() == ['{"p":1}', None]
    none = _norm({"client_ts": ts[:1], "properties": pa.nulls(1)})
    assert none.table.column("properties").to_pylist() == [None]
    assert none.table.schema.field("properties").type == pa.string()


@pytest.mark.parametrize("kind", ["string", "large_string"])
def test_bad_property_texts_are_found_beside_the_other_checks(kind: str) -> None:
    props = pa.array(['{"a":1}', "not json", None], getattr(pa, kind)())
    result = _norm({"client_ts": _ts(*["2024-05-01T10:00:00Z"] * 3), "properties": props})
    assert result.rejected == [(1, "properties: not JSON object text")]
    assert result.table.column("properties").to_pylist() == ['{"a":1}', None]


def test_a_well_formed_but_impossible_time_sends_the_column_one_by_one() -> None:
    padded = "2024-05-01T10:00:00" + " " * 60  # read after stripping; quoted as received
    column = _ts(
        "2024-13-01T10:00:00Z",  # the shape of a timestamp, month 13
        None,
        padded,
        " 2024-05-01T11:00:00Z",
        "2024-05-01T12:00:00Z",
    )
    result = _norm({"client_ts": column})
    assert result.rejected == [
        (0, "client_ts: not an ISO-8601 timestamp: '2024-13-01T10:00:00Z'"),
        (1, "missing required field client_ts"),
        (2, f"client_ts: timestamp has no UTC offset (add Z or +hh:mm): {padded[:64]!r}"),
    ]
    assert result.table.column("client_ts").to_pylist() == [
        datetime(2024, 5, 1, 11, tzinfo=UTC),
        datetime(2024, 5, 1, 12, tzinfo=UTC),
    ]


def test_only_the_texts_that_need_it_are_checked_one_by_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Texts that start with ``{``, end with ``}`` and hold no line break are parsed in
    bulk; the others, and those naming NaN or Infinity, are read one by one; all of them
    when the bulk parse fails."""
    import writers.normalize as normalize_module

    checked: list[str] = []
    real = normalize_module._is_object_text

    def counted(text: str) -> bool:
        checked.append(text)
        return real(text)

    monkeypatch.setattr(normalize_module, "_is_object_text", counted)
    texts = [None, '{"a":1}', "{}", '{"b":[1,2]}', "x", '{"c":"NaN"}', '{"d":\n1}', "", '{"e":2}']
    assert not_object_texts(pa.array(texts, pa.string())).tolist() == [4, 7]
    assert checked == ["x", '{"c":"NaN"}', '{"d":\n1}', ""]
    checked.clear()
    assert not_object_texts(pa.array(['{"a":1}', "{}", '{"b":{}}'] * 20)).tolist() == []
    assert checked == []
    assert not_object_texts(pa.array(['{"a":1}', "{x}"])).tolist() == [1]
    assert checked == ['{"a":1}', "{x}"]  # the bulk parse failed: every text, one by one
    checked.clear()
    assert not_object_texts(pa.array(['{"a":NaN}', '{"b":1}'])).tolist() == [0]
    assert not_object_texts(pa.array(['{"a":1}', '{"b":Infinity}'])).tolist() == [1]
    assert not_object_texts(pa.array(["{\r}", "{}"])).tolist() == []
    assert checked == ['{"a":NaN}', '{"b":Infinity}', "{\r}"]
    checked.clear()
    assert not_object_texts(pa.array(["", ""])).tolist() == [0, 1]
    assert checked == ["", ""]


def test_float_epochs_past_the_bound_and_columns_of_nulls_keep_their_types() -> None:
    # 5e15 ms is a finite number whose microseconds pass 2**62: out of range
    result = _norm({"client_ts": pa.array([5e15, 1714557600000.0])})
    assert result.rejected == [(0, "client_ts: epoch milliseconds out of range")]
    assert result.table.column("client_ts").to_pylist() == [datetime(2024, 5, 1, 10, tzinfo=UTC)]
    nulls = _norm({"client_ts": pa.nulls(2), "server_ts": pa.nulls(2)})
    assert nulls.table.schema.field("client_ts").type == TS
    assert nulls.table.schema.field("server_ts").type == TS


def test_a_float_epoch_that_overflows_is_out_of_range() -> None:
    result = _norm({"client_ts": pa.array([1e17, -1e300])})
    assert result.rejected == [
        (0, "client_ts: epoch milliseconds out of range"),
        (1, "client_ts: epoch milliseconds out of range"),
    ]


def test_properties_encoded_from_structs_and_maps_are_not_checked_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import writers.normalize as normalize_module

    calls: list[int] = []
    real = normalize_module.not_object_texts

    def counted(texts: pa.Array) -> np.ndarray:
        calls.append(len(texts))
        return real(texts)

    monkeypatch.setattr(normalize_module, "not_object_texts", counted)
    ts = _ts("2024-05-01T10:00:00Z")
    struct = pa.array([{"a": 1}], pa.struct([("a", pa.int64())]))
    mapped = pa.array([[("k", "v")]], pa.map_(pa.string(), pa.string()))
    for props in (struct, mapped):
        result = _norm({"client_ts": ts, "properties": props, "extra": pa.array([[1]])})
        assert result.rejected == [] and calls == []
        assert json.loads(result.table.column("properties")[0].as_py())["extra"] == [1]
    assert _norm({"client_ts": ts, "properties": _ts('{"a":1}')}).rejected == []
    assert calls == [1]  # text is checked, once


def test_timestamps_that_cannot_be_read_leave_a_timestamp_column() -> None:
    naive = pa.array([datetime(2024, 5, 1), None], pa.timestamp("us"))
    reasons = [
        "server_ts: timestamp has no time zone",
        "server_ts: expected an ISO-8601 string or epoch milliseconds, got bool",
    ]
    for column, reason in zip((naive, pa.array([True, None])), reasons, strict=True):
        result = _norm({"client_ts": ts_ok(), "server_ts": column})
        assert result.table.schema.field("server_ts").type == TS
        assert result.rejected == [(0, reason)]
    assert _norm({"client_ts": ts_ok()}).table.schema.field("server_ts").type == TS


def ts_ok() -> pa.Array:
    return _ts("2024-05-01T10:00:00Z", "2024-05-01T10:00:00Z")


def test_empty_struct_properties_take_the_folded_fields() -> None:
    empty = pa.array([{}, {}], pa.struct([]))
    extra = pa.array([{"x": 1}, None], pa.struct([("x", pa.int64())]))
    result = _norm({"client_ts": ts_ok(), "properties": empty, "extra": extra})
    assert result.table.column("properties").to_pylist() == ['{"extra":{"x":1}}', "{}"]


def test_every_column_is_looked_at_for_unstorable_values_wherever_the_row_column_is() -> None:
    deep: pa.DataType = pa.int64()
    for _ in range(MAX_NESTING):
        deep = pa.struct([("a", deep)])
    assert type_depth(deep) == MAX_NESTING  # exactly the limit: kept
    value: object = 1
    for _ in range(MAX_NESTING):
        value = {"a": value}
    table = pa.table(
        {
            ROW_COLUMN: pa.array([0, 1], pa.int64()),
            "event_id": ["a", "b"],
            "user_id": ["u", "u"],
            "event_type": ["v", "v"],
            "client_ts": ["2024-05-01T10:00:00Z"] * 2,
            "deep": pa.array([value, None], deep),
            "blob": pa.array([None, b"x"], pa.binary()),
        }
    )
    result = normalize(table, receipt_time=NOW, max_future_skew=SKEW)
    assert result.rejected == [
        (1, "blob: binary data is not accepted (decode bytes to text first)")
    ]
    assert json.loads(result.table.column("properties")[0].as_py())["deep"] == value


def test_string_columns_keep_their_type_when_missing_or_partly_wrong() -> None:
    result = _norm({"client_ts": ts_ok()})  # no session_id at all
    assert result.table.schema.field("session_id").type == pa.large_string()
    partly = _norm({"client_ts": ts_ok(), "session_id": pa.array([None, 7])})
    assert partly.rejected == [(1, "session_id: expected a string, got int64")]
    assert partly.table.schema.field("session_id").type == pa.large_string()
    assert partly.table.column("session_id").to_pylist() == [None]


@pytest.mark.parametrize("kind", ["string", "large_string"])
def test_text_properties_are_checked_beside_the_other_rules(
    monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    import writers.normalize as normalize_module

    submitted: list[int] = []
    real = normalize_module._CHECKS

    class Recorder:
        def submit(self, fn: Any, texts: pa.Array) -> Any:
            submitted.append(len(texts))
            return real.submit(fn, texts)

    monkeypatch.setattr(normalize_module, "_CHECKS", Recorder())
    props = pa.array(['{"a":1}', "[]"], getattr(pa, kind)())
    result = _norm({"client_ts": ts_ok(), "properties": props})
    assert result.rejected == [(1, "properties: not JSON object text")]
    assert submitted == [2]


def test_now_is_utc_whatever_the_local_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    monkeypatch.setenv("TZ", "Asia/Tokyo")  # nine hours ahead of UTC
    time.tzset()
    try:
        ahead = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
        result = _norm(
            {"client_ts": _ts("2024-05-01T10:00:00Z"), "server_ts": _ts(ahead)},
            receipt_time=datetime(2024, 5, 1, 11, tzinfo=UTC),
            receipt_estimated=True,
        )
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert result.rejected == [(0, "server_ts is in the future")]
