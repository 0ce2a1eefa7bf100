"""Hardening cases: the orphan window, password forms, companion names, column explosion.

* An orphan-removal window under 24 h is refused (exit 2, nothing deleted) unless
  ``--force``; with it a planted orphan goes and every referenced file stays.
* Catalog passwords holding ``/ # ? @ :`` or percent-escapes never appear, raw or decoded,
  in ``config show``, ``-vv`` logs or the error of an unreachable catalog.
* A companion table's name (``*_ingested``, ``*_rejected``) is refused as the events table,
  and no command but ``init`` creates a table.
* One file with thousands of distinct keys adds at most ``LAKEHOUSE_MAX_COLUMNS`` columns;
  every event is kept and the extra fields are folded into ``properties``.
"""

from __future__ import annotations

import json
import secrets
import urllib.parse
from pathlib import Path
from typing import Any

from tests.reliability.harness import Figures, Target, run_lakehouse
from tests.reliability.landing import Zone, add_wave


def _clean_exit(proc: Any, figures: Figures, what: str, code: int | tuple[int, ...]) -> bool:
    figures.hostile_cases += 1
    codes = code if isinstance(code, tuple) else (code,)
    if proc.popen.returncode not in codes or "Traceback" in proc.stderr:
        figures.violation(
            "invariant_breaks",
            f"{what}: exit {proc.popen.returncode} (wanted {code}): {proc.stderr.strip()[-300:]}",
        )
        return False
    return True


def _files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()}


def check_orphan_window(target: Target, workdir: Path, figures: Figures) -> None:
    """Windows under 24 h refused without --force; with it only the orphan goes."""
    logs = workdir / "logs"
    zone = Zone(workdir / "orphan-landing", 11, hours=3)
    add_wave(zone, files=3, per_file=40)
    proc = run_lakehouse(
        ["ingest", str(zone.root), "--create", "--json"], target, logs, "orphan-ingest"
    )
    # the zone holds a few bad lines on purpose: exit 1 (records rejected) is a success here
    if not _clean_exit(proc, figures, "ingest before the orphan check", (0, 1)):
        return
    warehouse = target.home / "warehouse"
    data_dir = warehouse / "analytics" / "events" / "data"  # the events table's, not a companion's
    if not data_dir.is_dir():
        figures.violation("invariant_breaks", f"no data folder {data_dir}")
        return
    orphan = data_dir / f"orphan-{secrets.token_hex(4)}.parquet"
    orphan.write_bytes(b"not referenced by any snapshot")
    before = _files_under(warehouse)
    for window in ("0s", "1h", "23h59m"):
        proc = run_lakehouse(
            ["maintain", "run", "--json", "--orphan-retention", window],
            target,
            logs,
            f"orphan-{window}",
        )
        _clean_exit(proc, figures, f"maintain run --orphan-retention {window}", 2)
        gone = before - _files_under(warehouse)
        if gone:
            figures.violation(
                "losses", f"a refused orphan window {window} deleted {sorted(gone)[:2]}"
            )
    events_before = _event_ids(target)
    proc = run_lakehouse(
        ["maintain", "run", "--json", "--orphan-retention", "0s", "--force"],
        target,
        logs,
        "orphan-force",
    )
    if _clean_exit(proc, figures, "maintain run --orphan-retention 0s --force", 0):
        figures.hostile_cases += 1
        if orphan.exists():
            figures.violation("invariant_breaks", "--force with 0s left the planted orphan")
        after = _event_ids(target)
        if after != events_before:
            figures.violation(
                "losses",
                f"orphan removal changed the table: {len(events_before)} -> {len(after)} events",
            )


def _event_ids(target: Target) -> list[str]:
    events = target.tables().events
    events.refresh()
    column = events.scan(selected_fields=("event_id",)).to_arrow().column("event_id")
    return sorted(column.to_pylist())


PASSWORD_FORMS = ("/", "#", "?", "@", ":", "%2F", "%40", "%25", "/#?@:")


def check_password_forms(server: Any, workdir: Path, figures: Figures) -> None:
    """Passwords with URI delimiters or percent-escapes: never printed, raw or decoded."""
    from tests.reliability.harness import postgres_target

    logs = workdir / "logs"
    base = postgres_target(server, workdir / "home", f"pwforms_{secrets.token_hex(3)}")
    url = base.env["PYICEBERG_CATALOG__PG__URI"]
    for i, form in enumerate(PASSWORD_FORMS):
        token = secrets.token_hex(6)
        # the text as written in the URI: reserved characters other than the ones SQLAlchemy
        # accepts raw in a password (every one but "@") stay raw, "@" must be escaped
        written = f"pw{token}{form.replace('@', '%40')}x{token[:4]}"
        decoded = urllib.parse.unquote(written)
        uri = url.replace(f"//{server.user}@", f"//{server.user}:{written}@", 1)
        closed = uri.rsplit("@", 1)[0] + "@127.0.0.1:1/nowhere"
        values = {written, decoded, f"pw{token}"}
        for j, (args, env_uri) in enumerate(
            (
                (["config", "show"], uri),
                (["config", "show", "--json"], uri),
                (["-vv", "health"], uri),
                (["-vv", "init"], closed),
                (["init", "--json"], closed),
            )
        ):
            proc = run_lakehouse(
                args,
                Target(base.home, base.env, "postgres"),
                logs,
                f"pw-{i}-{j}",
                PYICEBERG_CATALOG__PG__URI=env_uri,
            )
            figures.hostile_cases += 1
            text = proc.stdout + proc.stderr
            for value in values:
                if value in text:
                    line = next(ln for ln in text.splitlines() if value in ln)
                    figures.violation(
                        "invariant_breaks",
                        f"password form {form!r} leaked by `lakehouse {' '.join(args)}`: "
                        f"{line.replace(value, '<SECRET>')[:200]}",
                    )


def check_companion_names(target: Target, workdir: Path, figures: Figures) -> None:
    """Companion names refused as the events table; no command but init creates a table."""
    logs = workdir / "logs"
    zone = Zone(workdir / "companion-landing", 12, hours=1)
    add_wave(zone, files=1, per_file=10)
    warehouse = target.home / "warehouse"
    for i, name in enumerate(
        ("analytics.events_ingested", "analytics.events_rejected", "analytics.x_ingested")
    ):
        for j, args in enumerate(
            (["init", "--json"], ["ingest", str(zone.root), "--json"], ["health", "--json"])
        ):
            before = _files_under(warehouse) if warehouse.exists() else set()
            proc = run_lakehouse([*args, "--table", name], target, logs, f"companion-{i}-{j}")
            _clean_exit(proc, figures, f"{args[0]} --table {name}", 2)
            after = _files_under(warehouse) if warehouse.exists() else set()
            if after - before:
                figures.violation(
                    "invariant_breaks",
                    f"{args[0]} --table {name} wrote {sorted(after - before)[:2]}",
                )
    proc = run_lakehouse(
        ["ingest", str(zone.root), "--json", "--table", "analytics.typo"], target, logs, "typo"
    )
    if _clean_exit(proc, figures, "ingest into a missing table", 2):
        figures.hostile_cases += 1
        if "init" not in proc.stderr + proc.stdout:
            figures.violation(
                "invariant_breaks",
                f"ingest into a missing table does not say to run init: {proc.stderr[-200:]}",
            )
        if (warehouse / "analytics" / "typo").exists():
            figures.violation("invariant_breaks", "ingest into a missing table created it")


def check_column_explosion(
    target: Target, workdir: Path, figures: Figures, *, keys: int = 5000, cap: int = 200
) -> None:
    """One file with ``keys`` distinct top-level fields: at most ``cap`` columns in all,
    every event kept, each extra field's value found in its event's properties."""
    logs = workdir / "logs"
    zone = workdir / "explosion-landing"
    zone.mkdir(parents=True, exist_ok=True)
    per_event = 10
    events = []
    for n in range(keys // per_event):
        event = {
            "event_id": f"wide-{n}",
            "user_id": f"wu{n % 7}",
            "event_type": "wide",
            "client_ts": f"2024-06-01T{n % 24:02d}:00:{n % 60:02d}Z",
        }
        for k in range(per_event):
            event[f"field_{n * per_event + k}"] = n * per_event + k
        events.append(event)
    (zone / "wide.ndjson").write_text("\n".join(json.dumps(e) for e in events) + "\n")
    proc = run_lakehouse(
        ["ingest", str(zone), "--create", "--json"],
        target,
        logs,
        "explosion",
        LAKEHOUSE_MAX_COLUMNS=str(cap),
    )
    if not _clean_exit(proc, figures, "ingest of a file with thousands of keys", 0):
        return
    table = target.tables().events
    table.refresh()
    figures.hostile_cases += 1
    columns = len(table.schema().fields)
    if columns > cap:
        figures.violation(
            "invariant_breaks", f"{keys} distinct keys gave {columns} columns (cap {cap})"
        )
    rows = {
        r["event_id"]: r
        for r in table.scan().to_arrow().to_pylist()
        if r["event_id"].startswith("wide-")
    }
    if len(rows) != len(events):
        figures.violation("losses", f"column explosion: {len(rows)} of {len(events)} events kept")
        return
    names = {f.name for f in table.schema().fields}
    for event in events[:: max(1, len(events) // 50)]:
        row = rows[event["event_id"]]
        props = json.loads(row.get("properties") or "{}")
        for key, value in event.items():
            if not key.startswith("field_"):
                continue
            got = row.get(key) if key in names else props.get(key)
            if got != value:
                figures.violation(
                    "losses",
                    f"column explosion: {event['event_id']}.{key} = {got!r}, sent {value!r}",
                )
                return
