"""A seeded landing zone for the crash campaign, and the exact table it must become.

Files arrive in waves (a re-run after a crash then sees new files and forms different
groups). Events are on-time or late (``server_ts`` hours to days after ``client_ts``),
some lines resend an earlier event byte for byte (in the same or another file, wave or
commit group), and a few lines per file are bad (each must be rejected exactly once).
Some files are gzipped.
"""

from __future__ import annotations

import gzip
import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

BASE = datetime(2024, 5, 1, tzinfo=UTC)
EVENT_TYPES = ("app_open", "view", "add_to_cart", "checkout", "purchase")


def iso(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")


def micros(ts: datetime) -> int:
    return (ts - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def file_uri(path: Path) -> str:
    """The source URI ingest records for a local file."""
    return "file://" + str(path.resolve())


@dataclass
class Zone:
    root: Path
    seed: int
    # event_id -> (user_id, event_type, client_ts in µs): what the table must hold
    events: dict[str, tuple[str, str, int]] = field(default_factory=dict)
    lines_of: dict[str, str] = field(default_factory=dict)  # event_id -> its NDJSON line
    bad: set[tuple[str, int]] = field(default_factory=set)  # (source, line) to reject
    files: list[Path] = field(default_factory=list)
    lines: int = 0
    resent: int = 0
    waves: int = 0
    hours: int = 6  # client times span this many hours from BASE

    @property
    def sources(self) -> set[str]:
        return {file_uri(p) for p in self.files}

    def account(self) -> bool:
        """Every line is an event, a resend or a bad line."""
        return self.lines == len(self.events) + self.resent + len(self.bad)


def _event(rng: random.Random, event_id: str, hours: int) -> dict[str, object]:
    client = BASE + timedelta(
        seconds=rng.randrange(hours * 3600), microseconds=rng.randrange(10**6)
    )
    late = rng.random() < 0.25
    delay = (
        timedelta(seconds=rng.randrange(7200, 3 * 86400))
        if late
        else timedelta(seconds=rng.randrange(1, 60))
    )
    record: dict[str, object] = {
        "event_id": event_id,
        "user_id": f"u{rng.randrange(300)}",
        "event_type": rng.choice(EVENT_TYPES),
        "client_ts": iso(client),
        "server_ts": iso(client + delay),
        "platform": rng.choice(("ios", "android", "web")),
    }
    if rng.random() < 0.5:
        record["session_id"] = f"s{rng.randrange(1000)}"
    if rng.random() < 0.6:
        record["properties"] = {"page": f"/p/{rng.randrange(50)}", "n": rng.randrange(10)}
    return record


def _bad_line(rng: random.Random, n: int) -> bytes:
    kind = rng.randrange(5)
    if kind == 0:
        return b'{"event_id": "cut-%d", "user_id": "u1"' % n  # truncated
    if kind == 1:
        return b'{"event_id": "noclock-%d", "user_id": "u1", "event_type": "view"}' % n
    if kind == 2:
        return (
            b'{"event_id": "badclock-%d", "user_id": "u1", "event_type": "view", "client_ts": "yesterday"}'
            % n
        )
    if kind == 3:
        return b"[1, 2, 3]"
    return b'{"event_id": "utf8-\xff\xfe-%d", "user_id": "u1"}' % n


def add_wave(
    zone: Zone, *, files: int, per_file: int, resend_rate: float = 0.05, gz_rate: float = 0.3
) -> list[Path]:
    """Write one more wave of files; returns them."""
    rng = random.Random(zone.seed * 1000 + zone.waves)
    wave = zone.waves
    zone.waves += 1
    written = []
    for f in range(files):
        lines: list[bytes] = []
        bad_at = set(rng.sample(range(per_file), k=min(per_file, rng.randrange(0, 3))))
        for i in range(per_file):
            if i in bad_at:
                lines.append(_bad_line(rng, len(zone.bad)))
                continue
            if zone.lines_of and rng.random() < resend_rate:
                earlier = rng.choice(sorted(zone.lines_of))
                lines.append(zone.lines_of[earlier].encode())
                zone.resent += 1
                continue
            event_id = f"s{zone.seed}-w{wave}-f{f:03d}-{i:05d}"
            record = _event(rng, event_id, zone.hours)
            text = json.dumps(record, separators=(",", ":"))
            zone.lines_of[event_id] = text
            ts = datetime.fromisoformat(str(record["client_ts"]).replace("Z", "+00:00"))
            zone.events[event_id] = (str(record["user_id"]), str(record["event_type"]), micros(ts))
            lines.append(text.encode())
        folder = zone.root / f"w{wave}" / f"{f // 8:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        data = b"\n".join(lines) + b"\n"
        gz = rng.random() < gz_rate
        path = folder / (f"f{f:03d}.ndjson.gz" if gz else f"f{f:03d}.ndjson")
        tmp = folder / f".{path.name}.tmp"  # files appear whole, as a delivery stream writes them
        tmp.write_bytes(gzip.compress(data) if gz else data)
        tmp.rename(path)
        uri = file_uri(path)
        zone.bad.update((uri, i + 1) for i in bad_at)
        zone.lines += per_file
        zone.files.append(path)
        written.append(path)
    return written
