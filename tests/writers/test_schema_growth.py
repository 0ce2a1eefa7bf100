"""Schema growth: a new column is typed from all of a batch's values (the kind most values
share, widened within it; the others rejected one by one), and the number of columns is
capped, the fields beyond it kept in ``properties``."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from catalog import open_catalog
from lakehouse import schema as spec
from lakehouse.errors import ConfigError
from lakehouse.settings import Settings
from lakehouse.tables import load_tables
from tests.writers.events import event, rows
from writers import EventWriter, ingest


def _tables(settings: Settings) -> Any:
    return load_tables(open_catalog(settings), settings.table)


def _write(settings: Settings, values: list[Any], field: str = "f") -> Any:
    with EventWriter(settings) as writer:
        writer.write([event(i, **{field: v}) for i, v in enumerate(values)])
    return writer.totals


def _column(settings: Settings, field: str = "f") -> tuple[str, dict[str, Any], list[str]]:
    """(column type, event id -> stored value, sorted reject reasons)."""
    t = _tables(settings)
    kind = str(t.events.schema().find_field(field).field_type)
    data = {r["event_id"]: r[field] for r in rows(t.events).to_pylist()}
    reasons = sorted(r["reason"] for r in rows(t.rejected).to_pylist()) if t.rejected else []
    return kind, data, reasons


@pytest.mark.parametrize(
    "values",
    [["x", 1, 2, 3], [1, 2, 3, "x"], [1, "x", 2, None, 3]],
    ids=["string-first", "string-last", "string-between"],
)
def test_one_odd_value_rejects_one_record_not_the_others(
    settings: Settings, values: list[Any]
) -> None:
    totals = _write(settings, values)
    odd = values.index("x")
    assert totals.records_rejected == 1 and totals.records_written == len(values) - 1
    kind, data, reasons = _column(settings)
    assert kind == "long"
    assert f"e{odd:06d}" not in data
    assert {k: v for k, v in data.items()} == {
        f"e{i:06d}": v for i, v in enumerate(values) if v != "x"
    }
    assert reasons == ["f: column is long, got string"]


def test_integers_and_floats_share_a_double_column(settings: Settings) -> None:
    totals = _write(settings, [1, 2.5, 3, -4])
    assert totals.records_rejected == 0 and totals.records_written == 4
    kind, data, _ = _column(settings)
    assert kind == "double"
    assert sorted(data.values()) == [-4.0, 1.0, 2.5, 3.0]


def test_the_kind_with_most_values_wins_and_a_tie_goes_to_the_first_seen(
    settings: Settings,
) -> None:
    totals = _write(settings, [True, 1, 2], field="a")
    assert totals.records_rejected == 1
    assert _column(settings, "a")[0] == "long"
    totals = _write(settings, ["x", 1], field="b")
    assert totals.records_rejected == 1
    kind, data, _ = _column(settings, "b")
    assert kind == "string" and data["e000000"] == "x"
    totals = _write(settings, [7, "y"], field="c")
    assert _column(settings, "c")[0] == "long"


def test_max_columns_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings.from_env({}).max_columns == 200
    assert Settings.from_env({"LAKEHOUSE_MAX_COLUMNS": "12"}).max_columns == 12
    for bad in ("0", "-3", "many"):
        with pytest.raises(ConfigError, match="LAKEHOUSE_MAX_COLUMNS"):
            Settings.from_env({"LAKEHOUSE_MAX_COLUMNS": bad})


def test_fields_beyond_the_cap_are_folded_into_properties(settings: Settings) -> None:
    capped = Settings.from_env(max_columns=len(spec.CORE_COLUMNS) + 2)
    capped = capped.with_table(settings.table)
    records = [
        event(0, a=1, b="one", c=True),
        event(1, a=2, c=False, properties=json.dumps({"b": "mine", "k": 1})),
        event(2, a=3, b="three"),
        event(3, a=4, c=True, d=0.5),
    ]
    with EventWriter(capped) as writer:
        writer.write(records)
    result = writer.totals
    # a (4 values) and c (3) become columns; b (2) and d (1) do not fit
    assert result.new_columns == ("a", "c")
    assert result.fields_folded == 2 and result.records_written == 4
    assert len(result.warnings) == 1
    assert "LAKEHOUSE_MAX_COLUMNS=" in result.warnings[0] and "b, d" in result.warnings[0]
    t = _tables(capped)
    names = [f.name for f in t.events.schema().fields]
    assert len(names) == len(spec.CORE_COLUMNS) + 2 and "b" not in names and "d" not in names
    data = {r["event_id"]: r for r in rows(t.events).to_pylist()}
    props = {k: json.loads(r["properties"]) if r["properties"] else {} for k, r in data.items()}
    assert props["e000000"] == {"b": "one"}
    assert props["e000001"] == {"b": "mine", "k": 1}  # its own properties untouched
    assert props["e000002"] == {"b": "three"}
    assert props["e000003"] == {"d": 0.5}
    assert [data[f"e{i:06d}"]["a"] for i in range(4)] == [1, 2, 3, 4]
    # later batches: the folded fields are folded again, the columns stay as they are
    with EventWriter(capped) as writer:
        writer.write([event(9, a=5, b="later", e=1)])
    assert writer.totals.fields_folded == 2 and writer.totals.new_columns == ()
    stored = {r["event_id"]: r for r in rows(_tables(capped).events).to_pylist()}["e000009"]
    assert json.loads(stored["properties"]) == {"b": "later", "e": 1} and stored["a"] == 5


def _metadata_bytes(settings: Settings) -> int:
    location = _tables(settings).events.metadata_location
    return Path(location.removeprefix("file://")).stat().st_size


@pytest.mark.slow
def test_five_thousand_distinct_keys_stay_under_the_cap_and_lose_nothing(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    settings = sqlite_settings
    n = 5_000
    landing = tmp_path / "landing"
    landing.mkdir()
    # one hour of events (one data file), each with a key of its own
    lines = [json.dumps(event(i, minutes=i / 100, **{f"key_{i:04d}": i * 3})) for i in range(n)]
    (landing / "wide.ndjson").write_text("\n".join(lines) + "\n")
    writer = EventWriter(settings)
    result = ingest([str(landing)], settings, writer=writer)
    assert result.records_written == n and result.records_rejected == 0
    cap = settings.max_columns
    folded = n - (cap - len(spec.CORE_COLUMNS))
    assert writer.totals.fields_folded == result.fields_folded == folded
    assert "LAKEHOUSE_MAX_COLUMNS=200" in writer.totals.warnings[0]
    assert result.warnings == writer.totals.warnings

    t = _tables(settings)
    names = [f.name for f in t.events.schema().fields]
    assert len(names) <= cap
    table = rows(t.events).to_pylist()
    assert len(table) == n
    for record in table:  # each event's own key, as a column or in its properties
        i = int(record["event_id"][1:])
        key = f"key_{i:04d}"
        props = json.loads(record["properties"]) if record["properties"] else {}
        where = record[key] if key in names else props.get(key)
        assert where == i * 3, record["event_id"]
        assert (key in names) != (key in props)

    # commits stay small afterwards: the metadata holds 200 columns, not 5,000
    assert _metadata_bytes(settings) < 200_000
    started = time.perf_counter()
    with EventWriter(settings) as writer:
        writer.write([event(n + i) for i in range(100)])
    assert writer.totals.records_written == 100
    assert time.perf_counter() - started < 2.0
