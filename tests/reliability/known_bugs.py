"""Probes for the bugs the campaign found. Each returns a description when the bug is
there and None when it is not; ``test_known_bugs.py`` runs them as plain tests and the
long mode runs them again as regression checks. All are fixed (RELIABILITY.md)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

from tests.reliability.harness import PYTHON, ROOT, Target, run_lakehouse


def deep_nesting_crashes_ingest(workdir: Path) -> str | None:
    """A line nested ~1000 deep kills ``lakehouse ingest`` (SIGSEGV in polars), every
    time: the landing zone can never be ingested past it."""
    zone = workdir / "deep"
    zone.mkdir(parents=True)
    good = json.dumps(
        {"event_id": "ok-1", "user_id": "u", "event_type": "v", "client_ts": "2024-05-01T10:00:00Z"}
    )
    deep = (
        '{"event_id":"deep","user_id":"u","event_type":"v","client_ts":"2024-05-01T10:00:00Z","properties":'
        + '{"a":' * 1500
        + "1"
        + "}" * 1500
        + "}"
    )
    (zone / "f.ndjson").write_text(good + "\n" + deep + "\n")
    proc = run_lakehouse(
        ["ingest", str(zone), "--json", "--create"],
        Target(workdir / "home"),
        workdir / "logs",
        "deep",
    )
    if proc.popen.returncode in (0, 1) and "Traceback" not in proc.stderr:
        return None
    return f"ingest of a 1500-deep line exited {proc.popen.returncode} (-11 is SIGSEGV)"


def _in_process(code: str, workdir: Path) -> str:
    home = workdir / "home-py"
    out = subprocess.run(
        [PYTHON, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600,
        env=Target(home).process_env(),
    )  # fmt: skip
    return f"{(out.stdout + out.stderr).strip()}\nEXIT {out.returncode}"


def _crashed(out: str, *needed: str) -> str | None:
    """A probe whose process did not print every line it must print (or exited non-zero)
    proved nothing: that is a failure too, never a pass."""
    lines = out.splitlines()
    missing = [n for n in needed if not any(ln.startswith(n) for ln in lines)]
    if missing or lines[-1] != "EXIT 0":
        tail = " | ".join(lines[-4:])[:300]
        return f"the probe's process did not finish (missing {missing}): {tail}"
    return None


def properties_text_not_validated(workdir: Path) -> str | None:
    """``properties`` given as text is stored without checking it is a JSON object."""
    out = _in_process(
        "from writers import EventWriter\n"
        "with EventWriter() as w:\n"
        "    w.write([{'event_id': 'p1', 'user_id': 'u', 'event_type': 'v', 'client_ts': '2024-05-01T10:00:00Z', 'properties': 'not json'}])\n"
        "print('STORED', w.totals.records_written)\n",
        workdir,
    )
    if "STORED 1" in out:
        return "properties 'not json' was committed"
    return _crashed(out, "STORED 0")


def bytes_value_panics(workdir: Path) -> str | None:
    """A ``bytes`` value in a folded field or in properties makes ``EventWriter.write``
    raise pyo3's PanicException (a BaseException: ``except Exception`` misses it), and the
    failed write leaves the buffer's record count behind, so every later flush of that
    writer fails its own counts assertion."""
    out = _in_process(
        "from writers import EventWriter\n"
        "w = EventWriter()\n"
        "ok = {'event_id': 'b1', 'user_id': 'u', 'event_type': 'v', 'client_ts': '2024-05-01T10:00:00Z'}\n"
        "try:\n    w.write([{**ok, 'extra': b'ab'}]); print('WRITE OK')\n"
        "except BaseException as exc:\n    print('WRITE', type(exc).__name__)\n"
        "try:\n    w.write([{**ok, 'event_id': 'b2'}]); w.flush(); print('FLUSH OK')\n"
        "except BaseException as exc:\n    print('FLUSH', type(exc).__name__)\n",
        workdir,
    )
    found = [
        ln
        for ln in out.splitlines()
        if ln.startswith(("WRITE ", "FLUSH ")) and not ln.endswith(" OK")
    ]
    return "; ".join(found) or _crashed(out, "WRITE ", "FLUSH ")


def trailing_newline_names(workdir: Path) -> str | None:
    """``$`` in ``re.match`` accepts a trailing newline: ``TableName`` takes
    'analytics.events\\n' and a field 'platform\\n' becomes a column."""
    from lakehouse.errors import UsageError
    from lakehouse.settings import TableName
    from writers.normalize import is_plain_name

    found = []
    try:
        TableName.parse("analytics.events\n")
        found.append("TableName.parse('analytics.events\\n') accepted")
    except UsageError:
        pass
    if is_plain_name("platform\n"):
        found.append("field 'platform\\n' is a plain column name")
    return "; ".join(found) or None


def concurrent_column_breaks_commit(workdir: Path) -> str | None:
    """A column added by another writer between a batch's conform and its commit makes
    the commit fail with a bare ValueError (pyarrow cast in writers/files.py)."""
    out = _in_process(
        "from writers import EventWriter\n"
        "a, b = EventWriter(), EventWriter()\n"
        "a.write([{'event_id': 'a1', 'user_id': 'u', 'event_type': 'v', 'client_ts': '2024-05-01T10:00:00Z'}])\n"
        "b.write([{'event_id': 'b1', 'user_id': 'u', 'event_type': 'v', 'client_ts': '2024-05-01T10:00:00Z', 'platform': 'ios'}])\n"
        "b.flush()\n"
        "try:\n    a.flush(); print('FLUSHED')\n"
        "except Exception as exc:\n    print('FAILED', type(exc).__name__)\n",
        workdir,
    )
    if "FAILED" in out:
        return f"second writer's flush: {next(ln for ln in out.splitlines() if 'FAILED' in ln)}"
    return _crashed(out, "FLUSHED")


def home_with_uri_characters(workdir: Path) -> str | None:
    """LAKEHOUSE_HOME with a space, '%', '#' or a quote: tables land outside it
    (in a percent-encoded sibling folder) or the catalog cannot open."""
    from tests.reliability.harness import Figures
    from tests.reliability.hostile import home_paths

    problems = home_paths(workdir, Figures())
    return "; ".join(problems) or None


def redaction_gaps(workdir: Path) -> str | None:
    """Secrets ``config show`` prints: passwords as URI query parameters, a password with
    no user name or with ``/ # ? @ :`` in it, Azure account keys and connection strings,
    REST headers."""
    from lakehouse.redact import redact_value

    cases = {
        ("uri", "postgresql+psycopg2://u@db/x?password=SECRET1"): "SECRET1",
        ("uri", "postgresql+psycopg2://:SECRET2@db/x"): "SECRET2",
        ("adls.account-key", "SECRET3"): "SECRET3",
        ("adls.connection-string", "AccountKey=SECRET4;"): "SECRET4",
        ("header.Authorization", "Bearer SECRET5"): "SECRET5",
        # passwords SQLAlchemy accepts with / # ? @ : or percent-escapes in them
        ("uri", "postgresql+psycopg2://u:SECRET6/x#y?z@db/x"): "SECRET6",
        ("uri", "postgresql+psycopg2://u:p@SECRET7:w/d@db/x"): "SECRET7",
        ("uri", "postgresql+psycopg2://u:SECRET8%2F%23%3F%40@db/x"): "SECRET8",
        ("uri", "postgresql+psycopg2://u@db/x?sslpassword=a#SECRET9"): "SECRET9",
    }
    leaked = [
        f"{key}={value!r}"
        for (key, value), secret in cases.items()
        if secret in redact_value(key, value)
    ]
    return ("not redacted: " + ", ".join(leaked)) if leaked else None


def outage_escapes_as_raw_error(server: object, target: Target, workdir: Path) -> str | None:
    """With the PostgreSQL catalog down, a maintenance run (what ``maintain serve`` calls
    in its loop, catching only LakehouseError) and a writer flush raise sqlalchemy's
    OperationalError, not a (retryable) LakehouseError: ``serve`` dies with a traceback."""
    from lakehouse.errors import LakehouseError
    from maintenance import run_maintenance
    from writers import EventWriter

    tables = target.tables()
    found = []
    with target.active() as settings:
        writer = EventWriter(settings, tables=tables)
        writer.write(
            [
                {
                    "event_id": "o1",
                    "user_id": "u",
                    "event_type": "v",
                    "client_ts": "2024-05-01T10:00:00Z",
                }
            ]
        )
        server.stop("immediate")  # type: ignore[attr-defined]
        try:
            for name, call in (
                ("run_maintenance", lambda: run_maintenance(tables.events)),
                ("EventWriter.flush", writer.flush),
            ):
                try:
                    call()
                except LakehouseError:
                    pass
                except Exception as exc:
                    found.append(f"{name} raised {type(exc).__module__}.{type(exc).__name__}")
        finally:
            server.start()  # type: ignore[attr-defined]
    return "; ".join(found) or None


def column_explosion(workdir: Path) -> str | None:
    """One batch with 1,000 distinct keys adds 1,000 columns: every later commit rewrites
    their metadata (0.9 s instead of 0.03 s a commit at 5,000)."""
    from catalog import open_catalog
    from lakehouse.settings import Settings
    from lakehouse.tables import load_tables
    from writers import EventWriter

    settings = Settings(home=workdir / "home-wide")
    with EventWriter(settings) as writer:
        writer.write(
            [
                {
                    "event_id": f"w{i}",
                    "user_id": "u",
                    "event_type": "v",
                    "client_ts": "2024-05-01T10:00:00Z",
                    f"key_{i}": i,
                }
                for i in range(1_000)
            ]
        )
    events = load_tables(open_catalog(settings), settings.table).events
    columns = len(events.schema().fields)
    kept = events.scan().to_arrow().num_rows
    if columns <= settings.max_columns and kept == 1_000:
        return None
    return f"{columns} columns (cap {settings.max_columns}), {kept} of 1000 events kept"


PROBES: dict[str, Callable[[Path], str | None]] = {
    "deep-nesting-segfault": deep_nesting_crashes_ingest,
    "properties-text-unchecked": properties_text_not_validated,
    "bytes-value-panics": bytes_value_panics,
    "trailing-newline-names": trailing_newline_names,
    "concurrent-column-valueerror": concurrent_column_breaks_commit,
    "home-uri-characters": home_with_uri_characters,
    "redaction-gaps": redaction_gaps,
    "column-explosion": column_explosion,
}
