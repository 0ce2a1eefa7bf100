"""When a landing file was received: the receipt time of its records without ``server_ts``.

``auto`` (the default) takes, in order: the delivery time in a Kinesis Data Firehose
object name (``<stream>-<version>-YYYY-MM-DD-HH-MM-SS-<uuid>[.ext]``), the start of the
hour of a ``YYYY/MM/DD/HH/`` key prefix, the modification time (no later than now).
``key`` takes only the first two (a file without either is received now), ``modified``
only the last, ``now`` the time of the run. Times from keys and modification times are estimates from storage metadata (a
Firehose time is the arrival of the object's oldest record); a record's own ``server_ts``
always wins over them.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

MODES = ("auto", "key", "modified", "now")

_FIREHOSE = re.compile(
    r"-(\d{4})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-"
    r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"
    r"(?:\.[A-Za-z0-9]+)*$"
)
_HOUR_PATH = re.compile(r"(?:^|/)(\d{4})/(\d{2})/(\d{2})/(\d{2})(?:/|$)")


def _at(*parts: str) -> datetime | None:
    try:
        return datetime(*(int(p) for p in parts), tzinfo=UTC)  # type: ignore[arg-type,misc]
    except ValueError:
        return None


def from_name(key: str) -> datetime | None:
    """The delivery time in a Firehose object name, to the second."""
    match = _FIREHOSE.search(key.rsplit("/", 1)[-1])
    return _at(*match.groups()) if match else None


def from_hour_path(key: str) -> datetime | None:
    """The start of the hour of the last ``YYYY/MM/DD/HH/`` run of folders in a key."""
    found = None
    for match in _HOUR_PATH.finditer(key):
        found = _at(*match.groups()) or found
    return found


def receipt_time(key: str, mtime: datetime, mode: str, now: datetime) -> tuple[datetime, bool]:
    """(receipt time, whether it is an estimate from storage metadata) of a file whose
    key (its path below the landing root) and modification time are given."""
    if mode == "now":
        return now, False
    if mode in ("auto", "key"):
        found = from_name(key) or from_hour_path(key)
        if found is not None:
            return min(found, now), True
        if mode == "key":
            return now, False
    return min(mtime, now), True
