from __future__ import annotations

import pytest

from catalog import open_catalog
from lakehouse.errors import ConfigError
from lakehouse.settings import Settings
from lakehouse.tables import ensure_tables, load_tables


def test_init_is_idempotent_and_tables_have_the_spec(settings: Settings) -> None:
    cat = open_catalog(settings)
    _, created = ensure_tables(cat, settings.table)
    assert created == [
        "analytics",
        "analytics.events",
        "analytics.events_rejected",
        "analytics.events_ingested",
    ]
    _, again = ensure_tables(cat, settings.table)
    assert again == []
    events = load_tables(open_catalog(settings), settings.table).events
    assert [f.name for f in events.spec().fields] == ["client_ts_hour"]
    assert str(events.spec().fields[0].transform) == "hour"
    assert [events.schema().find_field(f.source_id).name for f in events.sort_order().fields] == [
        "client_ts",
        "event_id",
    ]
    assert events.properties["write.parquet.compression-codec"] == "zstd"
    assert events.properties["commit.manifest-merge.enabled"] == "true"


def test_unknown_catalog_names_the_setting(home: object, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKEHOUSE_CATALOG", "nowhere")
    with pytest.raises(ConfigError, match="PYICEBERG_CATALOG__NOWHERE__URI"):
        open_catalog(Settings.from_env())


def test_missing_tables_say_run_init(sqlite_settings: Settings) -> None:
    with pytest.raises(ConfigError, match="lakehouse init"):
        load_tables(open_catalog(sqlite_settings), sqlite_settings.table)
