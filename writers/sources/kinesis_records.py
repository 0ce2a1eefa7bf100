"""What a Kinesis record holds, as NDJSON: one event, or several NDJSON lines, gzip
compressed or not (told by the gzip magic bytes, not by a setting).

A record that cannot be decoded keeps the complete lines before the damage (a corrupt or
truncated gzip stream) and names the damage; the ingest driver turns that into a reject
of the record, whose other lines are still read. A single event pretty-printed over
several lines is joined into one line.
"""

from __future__ import annotations

import json
import zlib
from datetime import UTC, datetime
from typing import Any

from writers.sources.base import Payload, Position

GZIP_MAGIC = b"\x1f\x8b"


def decode(data: bytes) -> tuple[bytes, str | None]:
    """NDJSON bytes (ending with a newline unless empty) and any damage found."""
    damage = None
    if data[:2] == GZIP_MAGIC:
        data, damage = _gunzip(data)
    elif b"\n" in data.rstrip(b"\r\n") and data.lstrip()[:1] == b"{":
        data = _one_event_or_lines(data)
    if data and not data.endswith(b"\n"):
        data += b"\n"
    return data, damage


def _gunzip(data: bytes) -> tuple[bytes, str | None]:
    """Every gzip member; after damage, the complete lines before it and the reason."""
    out: list[bytes] = []
    rest = data
    while rest[:2] == GZIP_MAGIC:
        inflater = zlib.decompressobj(wbits=31)
        try:
            out.append(inflater.decompress(rest))
        except zlib.error as exc:
            return _complete_lines(b"".join(out)), f"corrupt gzip data: {exc}"
        if not inflater.eof:
            return _complete_lines(b"".join(out)), "truncated gzip data"
        rest = inflater.unused_data
    text = b"".join(out)
    if b"\n" in text.rstrip(b"\r\n") and text.lstrip()[:1] == b"{":
        text = _one_event_or_lines(text)
    return text, None


def _complete_lines(data: bytes) -> bytes:
    cut = data.rfind(b"\n")
    return data[: cut + 1] if cut >= 0 else b""


def _one_event_or_lines(data: bytes) -> bytes:
    """Several lines whose first is not a whole JSON object may be one event written
    over several lines: then it becomes one line; otherwise the lines stay as they are."""
    first = data.lstrip().split(b"\n", 1)[0].rstrip(b"\r")
    if first.rstrip().endswith(b"}"):
        return data  # NDJSON, the common case: no parse here
    try:
        value = json.loads(data)
    except ValueError:
        return data  # the parser rejects the bad lines one by one
    if not isinstance(value, dict):
        return data
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def record_part(stream: str, shard: str, record: dict[str, Any]) -> Payload:
    """A record as a part of its shard's payload: named ``kinesis://stream/shard/seq``,
    received at its ``ApproximateArrivalTimestamp``."""
    raw = bytes(record["Data"])
    data, damage = decode(raw)
    arrived = record.get("ApproximateArrivalTimestamp")
    if not isinstance(arrived, datetime):
        arrived = datetime.now(UTC)
    elif arrived.tzinfo is None:
        arrived = arrived.replace(tzinfo=UTC)
    position = Position(f"kinesis://{stream}/{shard}/{record['SequenceNumber']}", len(raw))
    return Payload(position, data, arrived, damage=damage)
