"""Rejected records are visible: ``lakehouse.rejected()``, ``lakehouse rejects`` and the
counts by reason of ``ingest --json``, checked against the lines these tests made bad."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

import lakehouse
from lakehouse.cli.main import cli
from lakehouse.errors import UsageError
from lakehouse.read.rejects import glob_regex, parse_since
from lakehouse.schema import reason_kind
from lakehouse.settings import Settings


def good(i: int) -> str:
    return json.dumps(
        {
            "event_id": f"e{i}",
            "user_id": f"u{i % 3}",
            "event_type": "view",
            "client_ts": f"2024-05-01T10:{i % 60:02d}:00Z",
            "server_ts": f"2024-05-01T10:{i % 60:02d}:05Z",
        }
    )


# category -> bad lines of that kind (each with a distinct detail)
BAD = {
    "json": ['{"event_id": "b1", "user_id": ', '{"event_id": "b2", "user_id": "u", '],
    "no user": [
        '{"event_id": "b3", "event_type": "view", "client_ts": "2024-05-01T10:00:00Z"}',
        '{"event_id": "b4", "event_type": "buy", "client_ts": "2024-05-01T11:00:00Z"}',
        '{"event_id": "b5", "event_type": "x", "client_ts": "2024-05-01T12:00:00Z"}',
    ],
    "bad time": [
        '{"event_id": "b6", "user_id": "u1", "event_type": "view", "client_ts": "yesterday"}',
    ],
}


@pytest.fixture
def zone(tmp_path: Path) -> tuple[Path, dict[tuple[str, int], str]]:
    """Two landing files (one gzip) with good lines and the BAD lines in known places:
    returns the zone and {(file name, line): category} of every bad line."""
    root = tmp_path / "zone"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    bad_at: dict[tuple[str, int], str] = {}
    files = {"a/one.ndjson": [], "b/two.ndjson.gz": []}  # type: dict[str, list[str]]
    targets = ["a/one.ndjson", "b/two.ndjson.gz", "a/one.ndjson"]
    n = 0
    for k, (category, lines) in enumerate(BAD.items()):
        for j, line in enumerate(lines):
            name = targets[(k + j) % len(targets)]
            files[name] += [good(n), good(n + 1)]
            n += 2
            files[name].append(line)
            bad_at[(name, len(files[name]))] = category
    for name, lines in files.items():
        body = ("\n".join(lines) + "\n").encode()
        path = root / name
        path.write_bytes(gzip.compress(body) if name.endswith(".gz") else body)
    return root, bad_at


def _json(result: object) -> dict[str, object]:
    out = result.output.strip().splitlines()  # type: ignore[attr-defined]
    assert len(out) == 1, out
    return json.loads(out[0])


def test_ingest_then_rejects_show_what_was_made_bad(
    home: Path, zone: tuple[Path, dict[tuple[str, int], str]]
) -> None:
    root, bad_at = zone
    runner = CliRunner()
    ingested = runner.invoke(cli, ["ingest", str(root), "--create", "--json"])
    assert ingested.exit_code == 1, ingested.output  # some records rejected
    report = _json(ingested)
    assert report["records_rejected"] == len(bad_at)

    # the read API: one row per bad line, at the file and line it was made bad
    rows = lakehouse.rejected(Settings.from_env()).collect()
    assert rows.columns == ["rejected_at", "reason", "source", "line", "raw", "batch_key"]
    found = {
        (src.split("/zone/", 1)[1], line): raw
        for src, line, raw in rows.select("source", "line", "raw").iter_rows()
    }
    assert set(found) == set(bad_at)
    lines_of = {name: (root / name) for name, _ in bad_at}
    for (name, line), raw in found.items():
        data = lines_of[name].read_bytes()
        text = gzip.decompress(data) if name.endswith(".gz") else data
        assert raw == text.decode().splitlines()[line - 1]

    # counts by reason kind: the kinds split the bad lines exactly as the categories do
    kind_of = {
        (src.split("/zone/", 1)[1], line): reason_kind(reason)
        for src, line, reason in rows.select("source", "line", "reason").iter_rows()
    }
    groups: dict[str, set[str]] = {}
    for place, category in bad_at.items():
        groups.setdefault(category, set()).add(kind_of[place])
    assert all(len(kinds) == 1 for kinds in groups.values()), groups
    expected = {next(iter(k)): len(BAD[c]) for c, k in groups.items()}
    assert len(expected) == len(BAD)  # three categories, three kinds
    assert report["rejected_by_reason"] == expected

    shown = _json(runner.invoke(cli, ["rejects", "--json", "--samples", "1"]))
    assert shown["records"] == len(bad_at)
    assert shown["by_reason"] == expected
    assert list(shown["by_reason"].values()) == sorted(expected.values(), reverse=True)
    for reason in shown["reasons"]:  # type: ignore[attr-defined]
        assert len(reason["samples"]) == 1
        sample = reason["samples"][0]
        place = (sample["source"].split("/zone/", 1)[1], sample["line"])
        assert kind_of[place] == reason["reason"] and found[place] == sample["raw"]

    # text output: one line per kind with its count
    text = runner.invoke(cli, ["rejects"])
    assert text.exit_code == 0, text.output
    assert f"{len(bad_at)} rejected record(s)" in text.output
    for kind, count in expected.items():
        assert any(
            line.split() and line.split()[0] == str(count) and kind in line
            for line in text.output.splitlines()
        ), (kind, text.output)


def test_source_glob_and_since_filter(
    home: Path, zone: tuple[Path, dict[tuple[str, int], str]]
) -> None:
    root, bad_at = zone
    runner = CliRunner()
    before = datetime.now(UTC) - timedelta(seconds=1)
    assert runner.invoke(cli, ["ingest", str(root), "--create"]).exit_code == 1
    settings = Settings.from_env()
    in_b = sum(1 for name, _ in bad_at if name.startswith("b/"))
    assert 0 < in_b < len(bad_at)
    only_b = lakehouse.rejected(settings, source="*/zone/b/*").collect()
    assert only_b.height == in_b and all("/zone/b/" in s for s in only_b["source"])
    assert lakehouse.rejected(settings, source="*.gz").collect().height == in_b
    assert lakehouse.rejected(settings, source="zone/b/*").collect().height == 0  # anchored
    assert lakehouse.rejected(settings, since=before).collect().height == len(bad_at)
    later = datetime.now(UTC) + timedelta(minutes=1)
    assert lakehouse.rejected(settings, since=later).collect().height == 0

    shown = _json(runner.invoke(cli, ["rejects", "--json", "--source", "*/zone/a/*"]))
    assert shown["records"] == len(bad_at) - in_b
    future = _json(runner.invoke(cli, ["rejects", "--json", "--since", "2999-01-01"]))
    assert future["records"] == 0 and future["by_reason"] == {}
    recent = _json(runner.invoke(cli, ["rejects", "--json", "--since", "1h"]))
    assert recent["records"] == len(bad_at)
    none = runner.invoke(cli, ["rejects", "--since", "2999-01-01"])
    assert none.exit_code == 0 and "no rejected records" in none.output


def test_a_table_without_rejects_and_bad_options(home: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["init"]).exit_code == 0
    assert lakehouse.rejected(Settings.from_env()).collect().height == 0
    empty = _json(runner.invoke(cli, ["rejects", "--json"]))
    assert empty["records"] == 0 and empty["reasons"] == []
    bad = runner.invoke(cli, ["rejects", "--since", "last tuesday"])
    assert bad.exit_code == 2 and "--since" in bad.output


def test_parse_since_and_globs() -> None:
    now = datetime(2024, 5, 3, 12, tzinfo=UTC)
    assert parse_since("6h", now=now) == datetime(2024, 5, 3, 6, tzinfo=UTC)
    assert parse_since("2024-05-01", now=now) == datetime(2024, 5, 1, tzinfo=UTC)
    assert parse_since("2024-05-01T10:00Z") == datetime(2024, 5, 1, 10, tzinfo=UTC)
    with pytest.raises(UsageError):
        parse_since("soon")
    names = ["s3://b/2024/05/01/x.gz", "file:///z/a[1].ndjson", "batch:42", "a.b"]
    frame = pl.DataFrame({"source": names})
    for glob in ("*.gz", "*2024/05/0?/*", "batch:*", "*a[[]1].ndjson", "a.b", "a?b", "*[!z]"):
        import fnmatch

        want = [n for n in names if fnmatch.fnmatchcase(n, glob)]
        got = frame.filter(pl.col("source").str.contains(glob_regex(glob)))["source"].to_list()
        assert got == want, glob


def test_reason_kinds() -> None:
    assert reason_kind("invalid JSON: line 1 column 5 (char 4)") == "invalid JSON"
    assert reason_kind("client_ts: not an ISO-8601 timestamp: 'x'") == (
        "client_ts: not an ISO-8601 timestamp"
    )
    assert reason_kind("missing required field user_id") == "missing required field user_id"
    frame = pl.DataFrame(
        {"reason": ["invalid JSON: a: b", "user_id: expected a string, got int64", "plain"]}
    )
    from lakehouse.read.rejects import reason_kind_expr

    assert frame.select(reason_kind_expr())["reason"].to_list() == [
        reason_kind(r) for r in frame["reason"]
    ]
