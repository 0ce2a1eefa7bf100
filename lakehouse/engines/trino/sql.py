"""SQL text helpers: quoted identifiers, table references, and typed literals.

Values go to Trino as bound parameters (``?``) wherever Trino accepts them. Two places
do not: ``ALTER TABLE ... EXECUTE`` (Trino 476 counts no parameters in it: "Incorrect
number of parameters: expected 0") and view definitions. There the values are rendered
here from typed Python values (``datetime``, ``int``, ``timedelta``), never from user text,
and string literals have their quotes doubled.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from lakehouse.engines.trino.endpoint import CATALOG_NAME
from lakehouse.errors import UsageError
from lakehouse.settings import Settings


def quote_ident(name: str) -> str:
    """``name`` as a Trino delimited identifier: ``"a""b"`` for ``a"b``."""
    if not name:
        raise UsageError("an SQL identifier cannot be empty")
    return '"' + name.replace('"', '""') + '"'


def qualified(*parts: str) -> str:
    """Quoted dotted name: ``qualified("lakehouse", "analytics", "events")``."""
    return ".".join(quote_ident(p) for p in parts)


def table_ref(
    settings: Settings,
    *,
    name: str | None = None,
    catalog: str = CATALOG_NAME,
    snapshot_id: int | None = None,
    metadata_table: str | None = None,
) -> str:
    """The events table of ``settings`` (or ``name`` in its namespace), fully qualified
    and quoted; ``snapshot_id`` adds ``FOR VERSION AS OF <id>``; ``metadata_table``
    (``files``, ``snapshots``, ...) names ``"events$files"`` instead."""
    table = name or settings.table.name
    if metadata_table is not None:
        table = f"{table}${metadata_table}"
    ref = qualified(catalog, settings.table.namespace, table)
    if snapshot_id is not None:
        ref += f" FOR VERSION AS OF {int(snapshot_id)}"
    return ref


def string_literal(text: str) -> str:
    """``'it''s'``: a varchar literal."""
    return "'" + text.replace("'", "''") + "'"


def timestamp_literal(value: datetime) -> str:
    """``TIMESTAMP '2024-05-01 10:00:00.000000 UTC'`` (a naive ``value`` is UTC)."""
    if not isinstance(value, datetime):
        raise UsageError(f"expected a datetime, got {type(value).__name__}")
    utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return f"TIMESTAMP '{utc.strftime('%Y-%m-%d %H:%M:%S.%f')} UTC'"


def size_literal(size_bytes: int) -> str:
    """``'134217728B'``: a data size argument of a table procedure."""
    if int(size_bytes) <= 0:
        raise UsageError(f"a data size must be positive, got {size_bytes}")
    return f"'{int(size_bytes)}B'"


def duration_literal(value: timedelta, *, round_up: bool = True) -> str:
    """``'432000s'``: a duration argument of a table procedure, in whole seconds
    (rounded up by default: a longer retention keeps more, the safe side)."""
    if value < timedelta(0):
        raise UsageError(f"a duration cannot be negative, got {value}")
    micros = value // timedelta(microseconds=1)
    seconds = -(-micros // 1_000_000) if round_up else micros // 1_000_000
    return f"'{seconds}s'"
