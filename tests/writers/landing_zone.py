"""Builders of landing zones for tests: good files whose events the test knows, hostile
files beside them, and a CLI run in a child process with its peak memory."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.writers.events import event

Put = Callable[[str, bytes], None]
"""Store bytes under a key of the zone (a local file or an S3 object)."""

FIREHOSE_TIME = datetime(2026, 12, 3, 7, 5, 12, tzinfo=UTC)


def firehose_key(at: datetime, n: int, gz: bool) -> str:
    uuid = f"2f6c{n:04d}-1a2b-4c3d-8e9f-0123456789ab"
    name = f"mystream-1-{at:%Y-%m-%d-%H-%M-%S}-{uuid}" + (".gz" if gz else "")
    return f"{at:%Y/%m/%d/%H}/{name}"


def lines(events: list[dict[str, Any]]) -> bytes:
    return ("\n".join(json.dumps(e) for e in events) + "\n").encode()


@dataclass
class Zone:
    """What a test put in a zone: the ids of good events, and for each hostile key the
    words its reject reason must hold."""

    good: set[str] = field(default_factory=set)
    hostile: dict[str, str] = field(default_factory=dict)
    next_id: int = 0

    def events(self, n: int) -> list[dict[str, Any]]:
        out = [event(self.next_id + i, minutes=self.next_id + i) for i in range(n)]
        self.next_id += n
        return out


def gzip_bomb(expanded: int) -> bytes:
    """A gzip member that inflates to ``expanded`` bytes of valid-looking NDJSON."""
    line = b'{"event_id": "bomb", "user_id": "u", "event_type": "v"}\n'
    chunk = line * ((1 << 20) // len(line))
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [c.compress(chunk) for _ in range(expanded // len(chunk) + 1)]
    return b"".join(parts) + c.flush()


def hostile_zone(put: Put, *, max_line: int) -> Zone:
    """Good Firehose-named files (plain and gzip) with every kind of hostile file among
    them. Reasons are matched by words (``hostile`` maps key -> expected words)."""
    zone = Zone()
    at = FIREHOSE_TIME
    for n in range(4):
        batch = zone.events(30)
        zone.good.update(e["event_id"] for e in batch)
        body = lines(batch)
        put(
            firehose_key(at.replace(minute=n), n, gz=n % 2 == 1),
            gzip.compress(body) if n % 2 else body,
        )

    def hostile(key: str, data: bytes, words: str) -> None:
        put(key, data)
        zone.hostile[key] = words

    hostile("2026/12/03/07/corrupt.gz", b"\x1f\x8b\x08\x00" + os.urandom(300), "corrupt gzip")
    trunc = zone.events(20)
    zone.good.update(e["event_id"] for e in trunc[:10])  # the lines before the damage
    whole = gzip.compress(lines(trunc))
    cut = lines(trunc[:10])
    # a truncated member: enough compressed bytes for the first 10 lines, not the rest
    for size in range(len(whole) // 3, len(whole)):
        partial = zlib.decompressobj(31).decompress(whole[:size])
        if partial.startswith(cut) and len(partial) < len(cut) + 40:
            break
    hostile("2026/12/03/07/truncated.gz", whole[:size], "truncated gzip")
    tail = zone.events(10)
    zone.good.update(e["event_id"] for e in tail)
    hostile(
        "2026/12/03/07/trailing.gz",
        gzip.compress(lines(tail)) + b"this is not gzip",
        "after the last gzip member",
    )
    hostile("2026/12/03/07/bomb.gz", gzip_bomb(48 << 20), "LAKEHOUSE_MAX_FILE_BYTES")
    long = zone.events(5)
    zone.good.update(e["event_id"] for e in long)
    big = json.dumps({**event(999_001), "pad": "x" * (max_line + 10)})
    body = lines(long[:2]) + big.encode() + b"\n" + lines(long[2:])
    hostile("2026/12/03/07/long-line.ndjson", body, "LAKEHOUSE_MAX_LINE_BYTES")
    utf = zone.events(3)
    zone.good.update(e["event_id"] for e in utf)
    hostile(
        "2026/12/03/07/bad-utf8.ndjson",
        lines(utf) + b'{"event_id": "x\xff\xfe", "user_id": "u"}\n',
        "invalid UTF-8",
    )
    inner = zone.events(3)
    zone.good.update(e["event_id"] for e in inner)
    hostile(
        "2026/12/03/07/reserved.ndjson",
        lines(inner) + json.dumps({**event(999_002), "__row": 7}).encode() + b"\n",
        "reserved",
    )
    hostile("2026/12/03/07/README.txt", b"Deliveries of the mystream stream.\n", "not NDJSON")
    hostile("2026/12/03/07/picture.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 4, "not NDJSON")
    put("2026/12/03/07/_SUCCESS", b"")
    put("2026/12/03/07/.upload.tmp", b"partial")
    return zone


PEAK_AT_EXIT = """
import atexit, re, sys
def _peak(path=sys.argv.pop(1)):
    status = open("/proc/self/status").read()
    open(path, "w").write(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1))
atexit.register(_peak)
"""
"""Child prelude: at exit, write the child's own peak RSS in KiB (``VmHWM``) to the file
named by its first argument. ``VmHWM`` belongs to the address space the child made at
exec; ``ru_maxrss`` from ``wait4`` does not do: Linux carries the address space given up
at exec into it, which under fork or vfork is the parent's, so a test process grown to
1 GiB reported every child as at least 1 GiB."""


def run_measured(
    code: str, args: list[str], env: dict[str, str], workdir: Path
) -> tuple[int, str, str, int]:
    """Run ``python -c CODE ARGS`` in a child process: (exit code, stdout, stderr, peak
    RSS in bytes of that child alone, as the child measured it at exit; -1 when the child
    did not exit through Python, e.g. killed by a signal)."""
    out_path = workdir / f"cli-{os.getpid()}.out"
    err_path = out_path.with_suffix(".err")
    peak_path = out_path.with_suffix(".peak")
    peak_path.unlink(missing_ok=True)
    with out_path.open("wb") as out, err_path.open("wb") as err:
        status = subprocess.run(
            [sys.executable, "-c", PEAK_AT_EXIT + code, str(peak_path), *args],
            env={**os.environ, **env},
            stdout=out,
            stderr=err,
            check=False,
        ).returncode
    peak = int(peak_path.read_text()) * 1024 if peak_path.exists() else -1  # no clean exit
    return status, out_path.read_text(), err_path.read_text(), peak


def run_cli(args: list[str], env: dict[str, str]) -> tuple[int, str, str, int]:
    """Run ``lakehouse ARGS`` in a child process: (exit code, stdout, stderr, peak RSS in
    bytes of that child alone)."""
    home = env.get("LAKEHOUSE_HOME") or os.environ["LAKEHOUSE_HOME"]
    code = "import sys; from lakehouse.cli.main import main; sys.exit(main())"
    return run_measured(code, args, env, Path(home).parent)
