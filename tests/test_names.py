"""Names that end in a newline are refused: ``$`` in ``re.match`` matches before a final
``\\n``, so every name pattern is matched whole (bug 6: settings, funnels, Athena)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from lakehouse.engines.athena.sql import maintenance_ref
from lakehouse.errors import ConfigError, UsageError
from lakehouse.funnels.spec import funnel_spec
from lakehouse.settings import Settings, TableName


@pytest.mark.parametrize(
    "text",
    ["analytics.events\n", "analytics\n.events", "analytics.events\r\n", "\nanalytics.events"],
)
def test_table_name_with_a_newline_is_refused(text: str) -> None:
    with pytest.raises(UsageError, match="invalid table name"):
        TableName.parse(text)


def test_table_name_still_takes_plain_names() -> None:
    assert TableName.parse("analytics.events") == TableName("analytics", "events")
    assert TableName.parse("_a.b_" + "c" * 125).name == "b_" + "c" * 125


def test_lakehouse_table_with_a_newline_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="LAKEHOUSE_TABLE"):
        Settings.from_env({"LAKEHOUSE_TABLE": "analytics.events\n"})


def test_funnel_property_key_with_a_newline_is_refused() -> None:
    with pytest.raises(UsageError, match="property key"):
        funnel_spec(["view", "purchase"], timedelta(hours=1), breakdown="properties.plan\n")
    spec = funnel_spec(["view", "purchase"], timedelta(hours=1), breakdown="properties.plan-x")
    assert spec.breakdown == "properties.plan-x"


@pytest.mark.parametrize(
    ("namespace", "name"), [("analytics", "events\n"), ("analytics\n", "events")]
)
def test_athena_maintenance_ref_with_a_newline_is_refused(namespace: str, name: str) -> None:
    # TableName.parse refuses these; the Athena builder checks again on its own.
    with pytest.raises(UsageError, match="OPTIMIZE/VACUUM"):
        maintenance_ref(TableName(namespace, name))
    assert maintenance_ref(TableName("analytics", "_events")) == "analytics.`_events`"
