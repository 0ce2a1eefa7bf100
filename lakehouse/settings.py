"""Settings, resolved when called (never at import time) into a frozen typed object.

Every setting has an environment variable and, in the CLI, a flag. Catalog connection
details are not ours: they are configured the pyiceberg way (``.pyiceberg.yaml`` or
``PYICEBERG_CATALOG__<NAME>__<KEY>``) and chosen by name with ``LAKEHOUSE_CATALOG``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from lakehouse.durations import parse_duration
from lakehouse.errors import ConfigError, UsageError

DEFAULT_TABLE = "analytics.events"
# Companions of an events table NAME: NAME_rejected and NAME_ingested (tables) and
# NAME_ordered (the ordered view the SQL engines create).
REJECTED_SUFFIX = "rejected"
INGESTED_SUFFIX = "ingested"
ORDERED_SUFFIX = "ordered"
COMPANION_SUFFIXES = (REJECTED_SUFFIX, INGESTED_SUFFIX, ORDERED_SUFFIX)
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")  # fullmatch: "$" would allow a final "\n"


@dataclass(frozen=True)
class TableName:
    """A validated ``namespace.name`` pair. Only letters, digits and ``_`` are allowed,
    so a name can be used in SQL and in paths without escaping surprises."""

    namespace: str
    name: str

    @classmethod
    def parse(cls, text: str) -> TableName:
        parts = text.split(".")
        if len(parts) != 2 or not all(_IDENT.fullmatch(p) for p in parts):
            raise UsageError(
                f"invalid table name {text!r}: write it as NAMESPACE.NAME, each made of "
                "letters, digits and '_' and not starting with a digit (e.g. analytics.events)"
            )
        return cls(parts[0], parts[1])

    def companion_suffix(self) -> str | None:
        """The companion suffix this name ends with (``rejected`` for
        ``events_rejected``), or None: such a name cannot be an events table."""
        for suffix in COMPANION_SUFFIXES:
            if self.name.lower().endswith(f"_{suffix}"):
                return suffix
        return None

    def check_events_name(self) -> TableName:
        """This name, if it can name an events table; else a :class:`ConfigError`. A name
        ending in a companion suffix would collide with another table's companion (the
        events table ``events_ingested`` and the ingest log of ``events``)."""
        suffix = self.companion_suffix()
        if suffix is not None:
            raise ConfigError(
                f"{self} cannot be an events table: names ending in "
                f"{', '.join('_' + s for s in COMPANION_SUFFIXES)} are kept for the companion "
                f"tables and views of an events table ({self.namespace}."
                f"{self.name[: -len(suffix) - 1]} has its {suffix} companion there). "
                "Choose another --table / LAKEHOUSE_TABLE"
            )
        return self

    def sibling(self, suffix: str) -> TableName:
        """The name of a companion table (``events_rejected`` beside ``events``)."""
        return TableName(self.namespace, f"{self.name}_{suffix}")

    @property
    def identifier(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    def __str__(self) -> str:
        return f"{self.namespace}.{self.name}"


@dataclass(frozen=True)
class Settings:
    """Everything the writers, maintenance and readers need to know, in one place."""

    home: Path = field(default_factory=lambda: Path(".lakehouse"))
    catalog: str | None = None
    table: TableName = field(default_factory=lambda: TableName.parse(DEFAULT_TABLE))
    allowed_lateness: timedelta = timedelta(hours=1)
    max_future_skew: timedelta = timedelta(hours=1)
    target_file_size: int = 128 * 1024 * 1024
    buffer_max_records: int = 1_000_000
    buffer_max_bytes: int = 256 * 1024 * 1024
    buffer_max_age: timedelta = timedelta(seconds=60)
    max_columns: int = 200
    """Top-level columns the events table may grow to (core columns included); fields
    found beyond it are folded into ``properties``."""

    @property
    def catalog_label(self) -> str:
        return self.catalog or "embedded"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Resolve settings from ``LAKEHOUSE_*`` variables, then apply explicit overrides
        (``None`` overrides are ignored, so CLI flags can be passed straight through)."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            var = f"LAKEHOUSE_{f.name.upper()}"
            if var in env and env[var] != "":
                values[f.name] = _convert(f.name, env[var], var)
        for key, value in overrides.items():
            if value is None:
                continue
            if isinstance(value, str) and key != "catalog":
                value = _convert(key, value, f"--{key.replace('_', '-')}")
            values[key] = value
        return replace(cls(), **values)

    def with_table(self, table: TableName) -> Settings:
        return replace(self, table=table)


def _convert(name: str, raw: str, source: str) -> Any:
    try:
        if name == "home":
            return Path(raw).expanduser()
        if name == "catalog":
            return raw
        if name == "table":
            return TableName.parse(raw).check_events_name()
        if name in {"allowed_lateness", "max_future_skew", "buffer_max_age"}:
            return parse_duration(raw)
        if name in {"target_file_size", "buffer_max_bytes"}:
            return parse_size(raw)
        if name == "buffer_max_records":
            return int(raw)
        if name == "max_columns":
            value = int(raw)
            if value < 1:
                raise ValueError(f"must be a positive number of columns, got {raw!r}")
            return value
    except (UsageError, ValueError) as exc:
        raise ConfigError(f"{source}: {exc}") from exc
    raise ConfigError(f"{source}: unknown setting {name!r}")


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?\s*$", re.IGNORECASE)
_FACTORS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_size(text: str) -> int:
    """Parse ``128MB``, ``64m``, ``1GiB`` or a plain byte count (binary units)."""
    match = _SIZE.match(text)
    if not match:
        raise UsageError(f"cannot read size {text!r}; write it like 134217728, 128MB or 1GB")
    unit = (match.group(2) or "").lower()[:1]
    return int(float(match.group(1)) * _FACTORS[unit])
