"""Fixtures for the read API and funnel tests: events written through the real writer."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from lakehouse.settings import Settings
from writers import EventWriter, WriteResult

BASE = datetime(2024, 5, 1, tzinfo=UTC)


def iso(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")


def ev(
    event_id: str,
    user: str,
    kind: str,
    at: timedelta,
    *,
    delay: timedelta = timedelta(seconds=5),
    **extra: Any,
) -> dict[str, Any]:
    """An event ``at`` after BASE, received ``delay`` later."""
    client = BASE + at
    return {
        "event_id": event_id,
        "user_id": user,
        "event_type": kind,
        "client_ts": iso(client),
        "server_ts": iso(client + delay),
        **extra,
    }


def write(settings: Settings, rows: Iterable[dict[str, Any]]) -> WriteResult:
    """Write ``rows`` in one commit of the real writer and return its result."""
    with EventWriter(settings) as writer:
        writer.write(list(rows))
    return writer.totals
