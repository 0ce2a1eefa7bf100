"""Hostile names and secrets.

* Table and namespace names crafted to break SQL or paths are refused (exit 2, a message,
  no traceback, nothing created); ``TableName`` only yields plain identifiers.
* Event types, property names and top-level field names with quotes, semicolons, ``../``
  are stored as sent, properties stay JSON, and a funnel over such event types counts
  right (polars engine through the CLI); the SQL text builders (Trino, Athena) carry step
  names only as bound parameters and quote identifiers.
* Landing files with hostile names are ingested exactly once, recorded under their URI.
* Secrets (PostgreSQL passwords in URIs, S3 secret keys, session tokens) never appear in
  ``config show``, in ``-vv`` logs, or in error messages.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from tests.reliability.harness import Figures, Target, run_lakehouse
from tests.reliability.landing import file_uri

HOSTILE_TEXT = (
    "a'b", "c;d", "../../etc/passwd", '"; DROP TABLE analytics.events; --', "x\\y", "100%s",
    "{braces}", "$(touch pwned)", "🚀 launch", "tab\there", "?", "--", "/*", "`tick`", "a\"b",
)  # fmt: skip
HOSTILE_TABLES = (
    "analytics.events; DROP TABLE x", "../etc.passwd", "analytics/../x.events", "a'b.events",
    'analytics."events"', "analytics.events.extra", "analytics", ".events", "analytics.",
    "analytics.ev ents", "analytics.1events", "analytics.événements", "a" * 129 + ".b",
    "analytics.events--", "%2e%2e.events", "analytics.e$vents",
)  # fmt: skip
COMPANION_TABLES = ("analytics.events_ingested", "analytics.events_rejected", "x.y_ordered")
HOSTILE_FILE_NAMES = (
    "a'b;c.ndjson", "sp ace.ndjson", "%41%2e%2e.ndjson", "new\nline.ndjson", "ü-☃.ndjson",
    "#hash.ndjson", "?q=1.ndjson", "--help.ndjson", "$(echo pwn).ndjson", "back\\slash.ndjson",
    'quote"d.ndjson',
)  # fmt: skip


def _clean_failure(proc: Any, figures: Figures, what: str, code: int = 2) -> None:
    figures.hostile_cases += 1
    if proc.popen.returncode != code or "Traceback" in proc.stderr:
        figures.violation(
            "invariant_breaks",
            f"{what}: exit {proc.popen.returncode} (wanted {code}): {proc.stderr[-300:]}",
        )


def check_table_names(
    target: Target, workdir: Path, figures: Figures, *, cli_cases: int = 8
) -> None:
    """Every hostile name refused by TableName and by the CLI (the first ``cli_cases``
    through ``--table`` and ``LAKEHOUSE_TABLE``), and nothing created."""
    from lakehouse.errors import UsageError
    from lakehouse.settings import TableName

    for text in HOSTILE_TABLES:
        figures.hostile_cases += 1
        try:
            TableName.parse(text)
            figures.violation("invariant_breaks", f"TableName accepted {text!r}")
        except UsageError:
            pass
    before = sorted(p for p in workdir.rglob("*"))
    for i, text in enumerate(HOSTILE_TABLES[:cli_cases]):
        proc = run_lakehouse(
            ["init", "--json", "--table", text], target, workdir / "logs", f"table-{i}"
        )
        _clean_failure(proc, figures, f"init --table {text!r}")
        proc = run_lakehouse(
            ["health", "--json"], target, workdir / "logs", f"table-env-{i}", LAKEHOUSE_TABLE=text
        )
        _clean_failure(proc, figures, f"LAKEHOUSE_TABLE={text!r}")
    for i, text in enumerate(COMPANION_TABLES):  # valid names, but a companion's
        proc = run_lakehouse(
            ["init", "--json", "--table", text], target, workdir / "logs", f"companion-{i}"
        )
        _clean_failure(proc, figures, f"init --table {text!r} (a companion's name)")
    created = [p for p in workdir.rglob("*") if p not in before and "logs" not in p.parts]
    if created:
        figures.violation("invariant_breaks", f"refused table names still created {created[:3]}")


def hostile_events(n_users: int = 3) -> list[dict[str, Any]]:
    """Per hostile event type: u0 does a'b then c;d; u1 only a'b; u2 only c;d; plus
    hostile property and field names."""
    rows = []
    for k, kind in enumerate(HOSTILE_TEXT):
        for u in range(n_users):
            rows.append(
                {
                    "event_id": f"h-{k}-{u}",
                    "user_id": f"hu{u}",
                    "event_type": kind,
                    "client_ts": f"2024-05-01T10:{k:02d}:{u:02d}Z",
                    "properties": {kind: k, "../x": "y", "k;DROP": "z"},
                    kind if k % 2 else "Robert'); DROP TABLE x;--": "folded",
                }
            )
    # the funnel: a'b -> c;d within a day
    rows += [
        {
            "event_id": "f-0",
            "user_id": "fu0",
            "event_type": "a'b",
            "client_ts": "2024-05-02T10:00:00Z",
        },
        {
            "event_id": "f-1",
            "user_id": "fu0",
            "event_type": "c;d",
            "client_ts": "2024-05-02T10:10:00Z",
        },
        {
            "event_id": "f-2",
            "user_id": "fu1",
            "event_type": "a'b",
            "client_ts": "2024-05-02T11:00:00Z",
        },
        {
            "event_id": "f-3",
            "user_id": "fu2",
            "event_type": "c;d",
            "client_ts": "2024-05-02T12:00:00Z",
        },
    ]
    return rows


def check_event_names(
    target: Target, workdir: Path, figures: Figures, *, breakdowns: int = 3
) -> None:
    """Hostile event types and property names round-trip; the funnel over them counts right."""
    from writers import EventWriter

    rows = hostile_events()
    with target.active() as settings, EventWriter(settings) as writer:
        writer.write(rows, batch_id="hostile")
    events = target.tables().events
    events.refresh()
    stored = {r["event_id"]: r for r in events.scan().to_arrow().to_pylist()}
    for row in rows:
        figures.hostile_cases += 1
        got = stored.get(row["event_id"])
        if got is None or got["event_type"] != row["event_type"]:
            figures.violation(
                "losses", f"event type {row['event_type']!r} not stored as sent: {got}"
            )
            continue
        props = json.loads(got["properties"] or "{}")
        if row.get("properties") and not all(
            props.get(k) == v for k, v in row["properties"].items()
        ):
            figures.violation(
                "invariant_breaks", f"properties of {row['event_id']} changed: {got['properties']}"
            )
    # users: a'b -> hu0,hu1,hu2 (each once, 10:00), fu0, fu1; then c;d within 1d after a'b
    want = _oracle_funnel(list(stored.values()), ("a'b", "c;d"), timedelta(days=1))
    proc = run_lakehouse(
        ["funnel", "--steps", "a'b,c;d", "--json"], target, workdir / "logs", "funnel"
    )
    figures.hostile_cases += 1
    if proc.popen.returncode != 0:
        figures.violation(
            "invariant_breaks",
            f'funnel --steps "a\'b,c;d" exited {proc.popen.returncode}: {proc.stderr[-300:]}',
        )
    else:
        got = [s["users"] for s in json.loads(proc.stdout)["steps"]]
        if got != want:
            figures.violation(
                "invariant_breaks", f"funnel over hostile steps counted {got}, expected {want}"
            )
    for i, breakdown in enumerate(
        ("properties.a'b", "platform; DROP TABLE x", "../x")[:breakdowns]
    ):
        proc = run_lakehouse(
            ["funnel", "--steps", "a'b,c;d", "--breakdown", breakdown, "--json"],
            target,
            workdir / "logs",
            f"funnel-b{i}",
        )
        _clean_failure(proc, figures, f"funnel --breakdown {breakdown!r}")


def _oracle_funnel(
    rows: list[dict[str, Any]], steps: tuple[str, ...], window: timedelta
) -> list[int]:
    """Users reaching each step in order, every step within ``window`` of the first
    (ClickHouse windowFunnel: the furthest step over all starting points)."""
    by_user: dict[str, list[tuple[Any, str]]] = {}
    for r in rows:
        by_user.setdefault(r["user_id"], []).append((r["client_ts"], r["event_type"]))
    reached = [0] * len(steps)
    for events in by_user.values():
        events.sort()
        best = 0
        for i, (ts, kind) in enumerate(events):
            if kind != steps[0]:
                continue
            level = 1
            for ts2, kind2 in events[i + 1 :]:
                if ts2 - ts > window or level == len(steps):
                    break
                if kind2 == steps[level] and ts2 >= ts:
                    level += 1
            best = max(best, level)
        for k in range(best):
            reached[k] += 1
    return reached


def check_sql_builders(figures: Figures) -> None:
    """Step names travel as parameters; identifiers are quoted; unsafe references refused."""
    from lakehouse.engines.athena.funnel import athena_funnel_query
    from lakehouse.engines.athena.sql import check_ref, execution_parameters, quote_identifier
    from lakehouse.engines.trino.funnel import funnel_query
    from lakehouse.engines.trino.sql import quote_ident
    from lakehouse.errors import UsageError
    from lakehouse.funnels.engines import FunnelRequest
    from lakehouse.funnels.spec import funnel_spec
    from lakehouse.funnels.sql import funnel_sql
    from lakehouse.read.sequence import ordered_view_sql
    from lakehouse.settings import TableName

    steps = ("a'b", "c;d", '"; DROP TABLE x; --', "../x", "?")
    window = timedelta(hours=1)
    texts = {
        "funnel_sql": funnel_sql(steps, window, '"lakehouse"."analytics"."events"'),
        "trino": funnel_query(funnel_spec(steps, window, "strict", "properties.k"), '"lakehouse"."analytics"."events"', ("event_id", "user_id", "event_type", "client_ts", "properties")),
        "athena": athena_funnel_query(FunnelRequest(steps, window), TableName("analytics", "events"), snapshot_id=42),
    }  # fmt: skip
    for name, (sql, params) in texts.items():
        figures.hostile_cases += 1
        leaked = [s for s in steps if s != "?" and s in sql]
        if leaked or sql.count("?") != len(params) or not all(s in params for s in steps):
            figures.violation(
                "invariant_breaks", f"{name}: step names in the SQL text {leaked} or parameters off"
            )
    for literal, step in zip(execution_parameters(list(steps)), steps, strict=True):
        figures.hostile_cases += 1
        if not (
            literal.startswith("'")
            and literal.endswith("'")
            and literal[1:-1].replace("''", "'") == step
            and "''" not in literal[1:-1].replace("''", "")
        ):
            figures.violation(
                "invariant_breaks", f"athena literal {literal!r} does not round-trip {step!r}"
            )
    for text in HOSTILE_TEXT:
        figures.hostile_cases += 1
        for quoted in (
            quote_ident(text),
            quote_identifier(text) if "\t" not in text else quote_ident(text),
        ):
            inner = quoted[1:-1]
            if not (
                quoted[0] == quoted[-1] == '"'
                and inner.replace('""', "").count('"') == 0
                and inner.replace('""', '"') == text
            ):
                figures.violation("invariant_breaks", f"identifier {text!r} quoted as {quoted!r}")
    for ref in ('"x"; DROP TABLE y', "x -- c", "x /* c */", "x\nDROP"):
        for fn in (ordered_view_sql, check_ref):
            figures.hostile_cases += 1
            try:
                fn(ref)
                figures.violation("invariant_breaks", f"{fn.__name__} accepted {ref!r}")
            except UsageError:
                pass


def check_file_names(target: Target, workdir: Path, figures: Figures) -> None:
    """Landing files with hostile names: every event once, every bad line once under the
    file's URI, a re-run skips them all."""
    zone = workdir / "hostile-landing" / "dots..;x"
    zone.mkdir(parents=True)
    expected: set[str] = set()
    bad: set[tuple[str, int]] = set()
    for i, name in enumerate(HOSTILE_FILE_NAMES):
        path = zone / name
        lines = [
            json.dumps(
                {
                    "event_id": f"hf-{i}-{j}",
                    "user_id": "u",
                    "event_type": "v",
                    "client_ts": "2024-05-03T10:00:00Z",
                }
            )
            for j in range(3)
        ]
        expected.update(f"hf-{i}-{j}" for j in range(3))
        path.write_text("\n".join([*lines, '{"cut']) + "\n")
        bad.add((file_uri(path), 4))
    for attempt in range(2):
        proc = run_lakehouse(
            ["ingest", str(zone.parent), "--json", "--create"],
            target,
            workdir / "logs",
            f"files-{attempt}",
        )
        figures.hostile_cases += 1
        if proc.popen.returncode not in (0, 1) or "Traceback" in proc.stderr:
            figures.violation(
                "invariant_breaks",
                f"ingest of hostile file names exited {proc.popen.returncode}: {proc.stderr[-300:]}",
            )
            return
        result = json.loads(proc.stdout)
        if attempt == 1 and (
            result["files"] != 0 or result["files_skipped"] != len(HOSTILE_FILE_NAMES)
        ):
            figures.violation("duplicates", f"re-run did not skip the hostile files: {result}")
    tables = target.tables()
    ids = [
        i
        for i in tables.events.scan(selected_fields=("event_id",))
        .to_arrow()
        .column("event_id")
        .to_pylist()
        if i.startswith("hf-")
    ]
    if sorted(ids) != sorted(expected):
        figures.violation(
            "losses",
            f"hostile file names: {len(expected - set(ids))} lost, {len(ids) - len(set(ids))} doubled",
        )
    rejected = {(r["source"], r["line"]) for r in tables.rejected.scan().to_arrow().to_pylist()}
    if not bad <= rejected:
        figures.violation(
            "losses",
            f"hostile file names: rejects recorded under other sources: {sorted(bad - rejected)[:2]}",
        )


def home_paths(workdir: Path, figures: Figures) -> list[str]:
    """LAKEHOUSE_HOME with characters that need escaping in a URI: the warehouse must
    stay inside it. Returns the problems found (also recorded as notes)."""
    import shutil

    problems = []
    for i, name in enumerate(("sp ace", "pct%41", "hash#x", "q'uote;x")):
        folder = workdir / "homes" / str(i)
        home = folder / name / "lh"
        (folder / name).mkdir(parents=True)
        proc = run_lakehouse(["init", "--json"], Target(home), workdir / "logs", f"home-{i}")
        figures.hostile_cases += 1
        outside = sorted(p.name for p in folder.iterdir() if p.name != name)
        if proc.popen.returncode != 0:
            problems.append(
                f"LAKEHOUSE_HOME {str(home)!r}: init exited {proc.popen.returncode}: {proc.stderr.strip()[-160:]}"
            )
        elif outside or not (home / "warehouse" / "analytics").exists():
            problems.append(
                f"LAKEHOUSE_HOME {str(home)!r}: tables written outside it, to {outside}"
            )
        shutil.rmtree(folder, ignore_errors=True)
    for problem in problems:
        figures.note(problem)
    return problems
