"""Rejected records: what was refused, why, and where it came from. Never dropped."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa

from lakehouse.schema import REJECTS_SCHEMA


@dataclass(frozen=True)
class Reject:
    """One refused record: the raw payload as received, a reason, and its source."""

    reason: str
    source: str
    line: int | None
    raw: str | None


def storable(text: str | None) -> str | None:
    """``text`` as UTF-8 can hold it: a lone surrogate (which ``json.loads`` gives for
    ``"\ud800"``, and no UTF-8 text can hold) is kept as its escape ``\ud800``."""
    if text is None:
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def rejects_to_arrow(rejects: list[Reject], *, batch_key: str, at: datetime) -> pa.Table:
    """Arrow table in the rejects table's schema (texts made storable: :func:`storable`)."""
    schema = REJECTS_SCHEMA.as_arrow()
    n = len(rejects)
    return pa.table(
        {
            "rejected_at": pa.array([at] * n, schema.field("rejected_at").type),
            "reason": pa.array([storable(r.reason) for r in rejects], schema.field("reason").type),
            "source": pa.array([storable(r.source) for r in rejects], schema.field("source").type),
            "line": pa.array([r.line for r in rejects], schema.field("line").type),
            "raw": pa.array([storable(r.raw) for r in rejects], schema.field("raw").type),
            "batch_key": pa.array([batch_key] * n, schema.field("batch_key").type),
        },
        schema=schema,
    )
