"""Which content is rejected whole as "not NDJSON": binary, or text without a line that
starts like a JSON object. Empty content (after a byte-order mark) holds no record and
is no reject; a truncated gzip file is judged line by line (its damage is a reject)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from writers.sources.limits import not_ndjson


@pytest.mark.parametrize("data", [b"", b"\xef\xbb\xbf", b"\xef\xbb\xbf\n\n", b" \t\n"])
def test_empty_content_is_not_a_reject(data: bytes) -> None:
    assert not_ndjson(data) is None


@pytest.mark.parametrize(
    ("data", "why"),
    [(b"PAR1\x00\x01", "binary"), (b"# notes\nhello\n", "no line starts with '{'")],
)
def test_other_content_is(data: bytes, why: str) -> None:
    reason = not_ndjson(data)
    assert reason is not None and why in reason


def test_a_truncated_gzip_file_is_judged_line_by_line(tmp_path: Path) -> None:
    from lakehouse.settings import Settings
    from writers.ingest import ingest

    record = {
        "event_id": "e1",
        "user_id": "u",
        "event_type": "v",
        "client_ts": "2024-05-01T10:00:00Z",
    }
    data = gzip.compress(b"[]\n" + json.dumps(record).encode() * 40 + b"\n")
    zone = tmp_path / "zone"
    zone.mkdir()
    (zone / "f.ndjson.gz").write_bytes(data[: len(data) // 2])
    (zone / "empty.ndjson.gz").write_bytes(gzip.compress(b"\xef\xbb\xbf"))
    settings = Settings.from_env({"LAKEHOUSE_HOME": str(tmp_path / "home")})
    from lakehouse.tables import open_tables

    open_tables(settings, create=True)
    result = ingest([str(zone)], settings)
    assert result.files == 2
    assert result.records_read == 2  # the line `[]` and the damage; the empty file none
    assert result.records_rejected == 2
    assert result.records_written == 0
