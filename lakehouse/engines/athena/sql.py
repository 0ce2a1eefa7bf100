"""Every SQL text the project sends to Athena, rendered for a given table reference.

Athena (engine v3) is Trino-based, so each text here is also run on a real Trino 476 in
the tests. Two statements exist only on Athena: ``OPTIMIZE ... REWRITE DATA USING
BIN_PACK`` and ``VACUUM``; their Trino equivalents (``ALTER TABLE ... EXECUTE optimize``)
are rendered here too, with the same ``WHERE`` clause, so the predicate is checked on Trino.

Identifiers are double-quoted (``"analytics"."events"``) except in OPTIMIZE and VACUUM,
which Athena parses like its Hive DDL (its VACUUM documentation: backticks, "double
quotes cannot be used"): there the validated names go unquoted, a table name starting
with ``_`` in backticks (:func:`maintenance_ref`). Values never enter the text: they travel as Athena ``ExecutionParameters`` for ``?`` placeholders, each rendered
as a SQL literal by :func:`sql_literal` (Athena, like Trino's ``EXECUTE ... USING``,
parses every parameter as one literal).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from lakehouse.errors import UsageError
from lakehouse.read.sequence import ordered_columns
from lakehouse.settings import TableName

MAX_PARAMETER_LENGTH = 1024  # Athena's limit for one ExecutionParameters entry
_UNSAFE = re.compile(r"[;\n\r]|--|/\*")
ORDERED_COLUMNS = ("event_seq", "prev_event_type", "millis_since_prev")
REQUIRED_COLUMNS = ("user_id", "client_ts", "event_id", "event_type")


def quote_identifier(name: str) -> str:
    """``events`` -> ``"events"`` (an embedded ``"`` is doubled)."""
    if not name or any(ord(c) < 32 for c in name):
        raise UsageError(f"not an identifier: {name!r}")
    return '"' + name.replace('"', '""') + '"'


def qualified(*parts: str) -> str:
    """``qualified("analytics", "events")`` -> ``"analytics"."events"``."""
    return ".".join(quote_identifier(p) for p in parts)


def table_ref(table: TableName, *, snapshot_id: int | None = None) -> str:
    """The table as Athena (and Trino, in its session catalog) names it, optionally
    pinned to a snapshot: ``"analytics"."events" FOR VERSION AS OF 123``."""
    ref = qualified(table.namespace, table.name)
    if snapshot_id is None:
        return ref
    if isinstance(snapshot_id, bool) or not isinstance(snapshot_id, int):
        raise UsageError(f"a snapshot id is an integer, not {snapshot_id!r}")
    return f"{ref} FOR VERSION AS OF {snapshot_id}"


_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # fullmatch: "$" would allow a final "\n"


def maintenance_ref(table: TableName) -> str:
    """The table as Athena's OPTIMIZE and VACUUM take it: ``analytics.events``, or
    ``analytics.`_events``` for a name starting with ``_`` (the database is never
    enclosed). Only plain names (letters, digits, ``_``) are accepted."""
    for part in (table.namespace, table.name):
        if not _PLAIN.fullmatch(part):
            raise UsageError(f"{part!r} cannot be named in OPTIMIZE/VACUUM")
    name = f"`{table.name}`" if table.name.startswith("_") else table.name
    return f"{table.namespace}.{name}"


def check_ref(ref: str) -> str:
    """Refuse a reference that could end or comment out the statement."""
    clean = ref.strip()
    if not clean or _UNSAFE.search(clean) or "?" in clean or "'" in clean:
        raise UsageError(f"not a table reference: {ref!r}")
    return clean


def sql_literal(value: Any) -> str:
    """One value as a SQL literal, the form Athena's ``ExecutionParameters`` take.

    ``'it''s'``, ``42``, ``DOUBLE '1.5'``, ``DECIMAL '1.50'``, ``TRUE``, ``NULL``,
    ``DATE '2024-05-01'``, ``TIMESTAMP '2024-05-01 10:00:00.000000 UTC'`` (aware datetimes
    are converted to UTC; naive ones stay ``timestamp`` without a zone).
    """
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "DOUBLE 'NaN'"
        if math.isinf(value):
            return "DOUBLE 'Infinity'" if value > 0 else "DOUBLE '-Infinity'"
        return f"DOUBLE '{value!r}'"
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise UsageError(f"a decimal parameter must be finite, not {value}")
        return f"DECIMAL '{value}'"
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            utc = value.astimezone(UTC)
            return f"TIMESTAMP '{utc.strftime('%Y-%m-%d %H:%M:%S.%f')} UTC'"
        return f"TIMESTAMP '{value.strftime('%Y-%m-%d %H:%M:%S.%f')}'"
    if isinstance(value, date):
        return f"DATE '{value.isoformat()}'"
    if isinstance(value, str):
        if "\x00" in value:
            raise UsageError("a text parameter cannot contain a NUL character")
        return "'" + value.replace("'", "''") + "'"
    raise UsageError(f"cannot pass a {type(value).__name__} as a query parameter")


def execution_parameters(params: Sequence[Any]) -> list[str]:
    """The ``ExecutionParameters`` of a query: one literal per ``?``."""
    out = [sql_literal(p) for p in params]
    for text in out:
        if len(text) > MAX_PARAMETER_LENGTH:
            raise UsageError(
                f"a query parameter is {len(text)} characters long; Athena takes at most "
                f"{MAX_PARAMETER_LENGTH}"
            )
    return out


# -- the ordered view ---------------------------------------------------------------------


def is_timestamp_tz(type_name: str) -> bool:
    name = type_name.lower()
    return name.startswith("timestamp") and "with time zone" in name


def ordered_view_select(table: str, columns: Sequence[tuple[str, str]]) -> str:
    """The SELECT of the ordered view over ``table`` (a quoted reference), in Athena's
    dialect. ``columns`` are the table's ``(name, engine type)`` pairs, in order.

    Same columns and semantics as :func:`lakehouse.read.sequence.ordered_view_sql`
    (``event_seq``, ``prev_event_type``, ``millis_since_prev``), with two differences
    Athena needs: the columns are listed (a ``*`` view goes stale when the writers add a
    column), and ``timestamp with time zone`` columns are exposed as ``timestamp(6)`` in
    UTC, because an Athena view cannot have a ``timestamp with time zone`` column
    ("Unsupported Hive type") and Athena refuses to CAST one to ``timestamp`` (see
    :func:`_utc_timestamp`). Ordering and ``millis_since_prev`` use the original column.
    """
    ref = check_ref(table)
    names = [name for name, _ in columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise UsageError(f"the table lacks the column(s) {', '.join(missing)}")
    clash = [c for c in ORDERED_COLUMNS if c in names]
    if clash:
        raise UsageError(f"the table already has column(s) named {', '.join(clash)}")
    items = []
    for name, type_name in columns:
        col = f"e.{quote_identifier(name)}"
        if is_timestamp_tz(type_name):
            col = f"{_utc_timestamp(col)} AS {quote_identifier(name)}"
        items.append(col)
    items += ordered_columns(lambda name: f"e.{quote_identifier(name)}", quote_identifier)
    body = ",\n    ".join(items)
    return f"SELECT\n    {body}\nFROM {ref} AS e"


def _utc_timestamp(column: str) -> str:
    """A ``timestamp with time zone`` expression as ``timestamp(6)`` in UTC, without the
    CAST Athena refuses: the value printed in UTC (``2024-05-01 10:00:00.123456 UTC``),
    its zone dropped, read back as a timestamp. Exact to the microsecond (Trino's
    date_add/date_diff stop at milliseconds)."""
    text = f"CAST({column} AT TIME ZONE 'UTC' AS varchar)"
    return f"CAST(regexp_replace({text}, ' [^ ]+$', '') AS timestamp(6))"


def create_view_sql(view: str, select: str) -> str:
    """``CREATE OR REPLACE VIEW <view> AS <select>`` (an Athena view, kept in Glue)."""
    return f"CREATE OR REPLACE VIEW {check_ref(view)} AS\n{select}"


# -- maintenance --------------------------------------------------------------------------


def optimize_sql(table: TableName, predicate: str | None = None) -> str:
    """Athena: ``OPTIMIZE <table> REWRITE DATA USING BIN_PACK [WHERE <predicate>]``; the
    predicate may use partition (source) columns only."""
    text = f"OPTIMIZE {maintenance_ref(table)} REWRITE DATA USING BIN_PACK"
    return f"{text} WHERE {_check_predicate(predicate)}" if predicate else text


def vacuum_sql(table: TableName) -> str:
    """Athena: ``VACUUM <table>`` (expires snapshots and removes orphan files as the
    table properties ``vacuum_max_snapshot_age_seconds``... say)."""
    return f"VACUUM {maintenance_ref(table)}"


def _check_predicate(predicate: str) -> str:
    if _UNSAFE.search(predicate) or "?" in predicate:
        raise UsageError(f"not a partition predicate: {predicate!r}")
    return predicate.strip()
