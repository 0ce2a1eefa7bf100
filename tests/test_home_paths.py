"""LAKEHOUSE_HOME may hold any character a folder name can: a space, ``%``, ``#``, ``?``,
quotes, non-ASCII letters (bug 7). The catalog file, the tables and orphan removal all stay
inside it, checked on real files with the real commands."""

from __future__ import annotations

import gzip
import json
import os
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy.engine import make_url

from catalog import embedded_catalog_properties
from lakehouse.cli.main import cli
from lakehouse.errors import ConfigError
from lakehouse.settings import Settings
from maintenance.paths import canonical, list_files

NAMES = [
    "sp ace",
    "pct%41",
    "pct%2e%2e",
    "hash#x",
    "q?x=1",
    "q'uote;x",
    'd"q',
    "caf\u00e9",
    "plain",
]


@pytest.mark.parametrize("name", NAMES)
def test_embedded_catalog_names_files_inside_the_home(tmp_path: Path, name: str) -> None:
    home = tmp_path / name / "lh"
    props = embedded_catalog_properties(Settings(home=home))
    assert make_url(props["uri"]).database == str(home / "catalog.db")
    assert canonical(props["warehouse"]) == str(home / "warehouse")
    if name == "plain":  # a path that needs no escaping keeps its file:// URI
        assert props["warehouse"] == (home / "warehouse").as_uri()


def _lakehouse(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def _event(i: int, hour: int) -> str:
    return json.dumps(
        {
            "event_id": f"e{i}",
            "user_id": f"u{i % 3}",
            "event_type": "view" if i % 2 else "purchase",
            "client_ts": f"2024-05-01T{hour:02d}:{i % 60:02d}:00Z",
        }
    )


@pytest.mark.slow
def test_init_ingest_and_maintain_in_a_home_that_needs_escaping(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parent = tmp_path / "homes" / "my lake %41#?'q \u00e9"
    lake = parent / "lh"
    parent.mkdir(parents=True)
    monkeypatch.setenv("LAKEHOUSE_HOME", str(lake))
    zone = parent / "landing #1"  # the landing zone too
    zone.mkdir()
    (zone / "a.ndjson").write_text("\n".join(_event(i, 10) for i in range(6)) + "\nnot json\n")
    with gzip.open(zone / "b.ndjson.gz", "wt") as out:
        out.write("\n".join(_event(i, 11) for i in range(6, 12)) + "\n")

    code, out, err = _lakehouse("init", "--json")
    assert code == 0, err
    location = json.loads(out)["location"]
    assert canonical(location) == str(lake / "warehouse" / "analytics" / "events")

    code, out, err = _lakehouse("ingest", str(zone), "--json")
    assert code == 1, err  # one bad line, kept aside
    result = json.loads(out)
    assert result["records_written"] == 12 and result["records_rejected"] == 1
    code, out, _ = _lakehouse("ingest", str(zone), "--json")
    assert json.loads(out)["records_written"] == 0  # both files skipped: already ingested

    # Everything was written inside the home: nothing beside it, the data under it.
    assert sorted(p.name for p in parent.iterdir()) == sorted(["lh", zone.name])
    assert (lake / "catalog.db").is_file()
    data = lake / "warehouse" / "analytics" / "events" / "data"
    committed = sorted(data.rglob("*.parquet"))
    assert committed

    # An orphan planted in the table's folder is found there and removed; nothing else is.
    orphan = data / "orphan.parquet"
    orphan.write_bytes(b"PAR1 not really")
    stamp = time.time() - 5 * 86400
    os.utime(orphan, (stamp, stamp))
    code, out, err = _lakehouse("maintain", "run", "--json", "--orphan-retention", "1d")
    assert code == 0, err
    run = json.loads(out)
    assert run["orphans"]["orphans_found"] == 1 and run["orphans_deleted"] == 1
    assert run["orphans"]["orphan_paths"] == [str(orphan)]
    assert run["orphans"]["files_scanned"] > 1
    assert not orphan.exists()

    code, out, err = _lakehouse("health", "--json")
    assert code == 0, err
    code, out, err = _lakehouse("funnel", "--steps", "view,purchase", "--json")
    assert code == 0, err
    from catalog import open_catalog
    from lakehouse.tables import load_tables

    events = load_tables(open_catalog(Settings.from_env()), Settings.from_env().table).events
    ids = events.scan(selected_fields=("event_id",)).to_arrow().column("event_id").to_pylist()
    assert sorted(ids) == sorted(f"e{i}" for i in range(12))
    assert sorted(p.name for p in parent.iterdir()) == sorted(["lh", zone.name])


def test_listing_and_canonical_forms_agree_on_real_files(tmp_path: Path) -> None:
    root = tmp_path / "w %41 #x ?q 'a"
    (root / "t" / "data").mkdir(parents=True)
    (root / "t" / "data" / "f.parquet").write_bytes(b"x")
    listed = list(list_files(str(root / "t")))
    assert [f.key for f in listed] == [str(root / "t" / "data" / "f.parquet")]
    assert [f.location for f in listed] == [str(root / "t" / "data" / "f.parquet")]
    # file:// locations are taken literally, as pyiceberg writes them: never decoded.
    plain = tmp_path / "plain"
    (plain / "x%20y").mkdir(parents=True)
    (plain / "x%20y" / "g.parquet").write_bytes(b"x")
    listed = list(list_files(f"file://{plain}/x%20y"))
    assert [f.key for f in listed] == [f"{plain}/x%20y/g.parquet"]
    assert canonical(f"file://{plain}/x%20y/g.parquet") == f"{plain}/x%20y/g.parquet"
    # A file:// location pyiceberg would cut at '#' or '?' is refused, not misread.
    with pytest.raises(ConfigError, match="bare path"):
        list(list_files(f"file://{root}/t"))
