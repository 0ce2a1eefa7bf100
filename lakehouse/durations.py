"""Durations written the way operators write them: ``0s``, ``30m``, ``6h``, ``5d``, ``1h30m``."""

from __future__ import annotations

import re
from datetime import timedelta

from lakehouse.errors import UsageError

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def parse_duration(text: str) -> timedelta:
    """Parse ``5d``, ``6h``, ``30m``, ``0s`` or a sum such as ``1h30m`` into a timedelta."""
    cleaned = text.strip().lower()
    if not cleaned:
        raise UsageError("empty duration; write it like 0s, 30m, 6h or 5d")
    pos = 0
    total = timedelta()
    for match in _PART.finditer(cleaned):
        if match.start() != pos:
            break
        total += timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})
        pos = match.end()
    if pos != len(cleaned):
        raise UsageError(f"cannot read duration {text!r}; write it like 0s, 30m, 6h, 5d or 1h30m")
    return total


def format_duration(value: timedelta) -> str:
    """Render a timedelta compactly (``1d2h``, ``45s``, ``0s``)."""
    seconds = int(value.total_seconds())
    if seconds == 0:
        return "0s"
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return sign + "".join(parts)
