"""Reading one landing file within limits, so that no file can block the zone.

A file is read whole into memory (its stored bytes, then its decompressed bytes); the
limits bound both: a stored or decompressed size over ``LAKEHOUSE_MAX_FILE_BYTES``
(default 4 GiB) makes the whole file a reject, gzip is inflated in steps and stops at the
limit (never inflated unbounded), and a line over ``LAKEHOUSE_MAX_LINE_BYTES`` (default
8 MiB) is a reject of that line (its bytes are blanked, so line numbers stay right).
gzip is recognised by its magic bytes, whatever the name; bytes after the last gzip
member, a truncated or corrupt member keep the complete lines before the damage.
"""

from __future__ import annotations

import os
import types
import zlib
from dataclasses import dataclass

import numpy as np

from lakehouse.errors import ConfigError

GZIP_MAGIC = b"\x1f\x8b"
DEFAULT_MAX_FILE_BYTES = 4 << 30
DEFAULT_MAX_LINE_BYTES = 8 << 20
_STEP = 16 << 20  # output bytes inflated per step
_SAMPLE = 200  # characters of an over-long line kept as its raw sample
_SNIFF = 64 << 10  # bytes looked at to tell NDJSON from other files

_inflate: types.ModuleType
try:  # Intel ISA-L inflates about twice as fast as zlib, with the same API
    from isal import isal_zlib as _inflate
except ImportError:  # pragma: no cover - isal is a dependency, zlib the fallback
    _inflate = zlib
_INFLATE_ERRORS: tuple[type[BaseException], ...] = (zlib.error, _inflate.error)


class FileRejected(Exception):
    """The whole file is a reject, for the reason given."""


@dataclass(frozen=True)
class Limits:
    """Bounds on one landing file: ``max_file`` bytes (stored or decompressed) and
    ``max_line`` bytes per line."""

    max_file: int = DEFAULT_MAX_FILE_BYTES
    max_line: int = DEFAULT_MAX_LINE_BYTES

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Limits:
        env = dict(os.environ) if env is None else env
        return cls(
            _size(env, "LAKEHOUSE_MAX_FILE_BYTES", DEFAULT_MAX_FILE_BYTES),
            _size(env, "LAKEHOUSE_MAX_LINE_BYTES", DEFAULT_MAX_LINE_BYTES),
        )


def _size(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number of bytes, got {raw!r}") from None
    if value < 1:
        raise ConfigError(f"{name} must be at least 1, got {value}")
    return value


def decode(data: bytes, limits: Limits) -> tuple[bytes, str | None]:
    """The file's content (gunzipped when it starts with the gzip magic) and any damage
    found. Raises :class:`FileRejected` when it is over the size limit."""
    if len(data) > limits.max_file:
        raise FileRejected(f"file of {len(data)} bytes is over LAKEHOUSE_MAX_FILE_BYTES")
    if data[:2] == GZIP_MAGIC:
        return gunzip(data, limits.max_file)
    return data, None


def gunzip(data: bytes, max_out: int) -> tuple[bytes, str | None]:
    """Inflate every gzip member in steps of at most ``_STEP`` output bytes; stop with
    :class:`FileRejected` once the output would exceed ``max_out``."""
    out: list[bytes] = []
    total = 0
    rest = data
    while rest:
        d = _inflate.decompressobj(wbits=31)
        pending = rest
        try:
            while True:
                piece = d.decompress(pending, _STEP)
                total += len(piece)
                if total > max_out:
                    raise FileRejected(
                        f"gzip content is over LAKEHOUSE_MAX_FILE_BYTES ({max_out} bytes); not read"
                    )
                out.append(piece)
                if d.eof:
                    break
                pending = d.unconsumed_tail
                if not pending:
                    break
        except _INFLATE_ERRORS as exc:
            return complete_lines(b"".join(out)), (
                f"corrupt gzip data: {exc}; lines after the damage are lost"
            )
        if not d.eof:
            return complete_lines(b"".join(out)), (
                "truncated gzip file; its last partial line was not read"
            )
        rest = d.unused_data
        if rest and rest[:2] != GZIP_MAGIC:
            if rest.strip(b"\x00"):  # zero padding is harmless; anything else is lost data
                return b"".join(out), (
                    f"{len(rest)} bytes after the last gzip member are not gzip; not read"
                )
            break
    return b"".join(out), None


def complete_lines(data: bytes) -> bytes:
    cut = data.rfind(b"\n")
    return data[: cut + 1] if cut >= 0 else b""


def not_ndjson(data: bytes) -> str | None:
    """Why the content is not NDJSON at all (binary, or no line that starts like a JSON
    object in its first bytes), or None. A file of JSON lines with a few bad ones is
    NDJSON: its bad lines are rejected one by one."""
    head = data[:_SNIFF]
    if b"\x00" in head:
        return "not NDJSON: binary content (NUL bytes)"
    text = head.lstrip(b"\xef\xbb\xbf")
    if not text.strip():  # empty, or blank lines only (after a byte-order mark): no records
        return None
    if not any(line.lstrip().startswith(b"{") for line in text.split(b"\n")):
        sample = text[:40].decode("utf-8", errors="backslashreplace")
        return f"not NDJSON: no line starts with '{{' (begins {sample!r})"
    return None


def over_long_lines(data: bytes, max_line: int) -> tuple[bytes, list[tuple[int, str, str]]]:
    """Blank every line longer than ``max_line`` bytes; returns the data and, for each
    such line, (1-based line number, raw sample, reason)."""
    if len(data) <= max_line:
        return data, []
    arr = np.frombuffer(data, np.uint8)
    ends = np.flatnonzero(arr == 10)
    starts = np.concatenate(([0], ends + 1))
    stops = np.concatenate((ends, [len(data)]))
    long = np.flatnonzero(stops - starts > max_line)
    if len(long) == 0:
        return data, []
    buffer = bytearray(data)
    problems = []
    for i in long.tolist():
        lo, hi = int(starts[i]), int(stops[i])
        sample = bytes(buffer[lo : lo + _SAMPLE]).decode("utf-8", errors="backslashreplace")
        problems.append(
            (
                i + 1,
                sample,
                f"line of {hi - lo} bytes is over LAKEHOUSE_MAX_LINE_BYTES ({max_line})",
            )
        )
        buffer[lo:hi] = b" " * (hi - lo)
    return bytes(buffer), problems
