"""Snapshot-summary keys are written once, in ``lakehouse/summary.py``: no other module of
the packages spells a ``lakehouse.<key>`` string. Summary keys are one word after
``lakehouse.``; table properties are namespaced further (``lakehouse.maintenance.lease``)
and module paths (``lakehouse.read``) are not keys.
And a real commit carries the keys and kinds that module names."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from lakehouse import summary
from lakehouse.settings import Settings
from lakehouse.tables import open_events_table
from writers import EventWriter

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("lakehouse", "writers", "maintenance", "catalog")
LITERAL = re.compile(r"""["']lakehouse\.([a-z][a-z.-]*)["']""")


def test_no_summary_key_is_spelled_outside_lakehouse_summary() -> None:
    lakehouse = ROOT / "lakehouse"
    modules = {p.stem for p in lakehouse.glob("*.py")} | {p.name for p in lakehouse.iterdir()}
    found: dict[str, list[str]] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if path == ROOT / "lakehouse" / "summary.py":
                continue
            for match in LITERAL.finditer(path.read_text()):
                key = match.group(1)
                if "." in key or key in modules:  # a table property or a module path
                    continue
                found.setdefault(key, []).append(str(path.relative_to(ROOT)))
    assert found == {}


def test_a_commit_carries_the_keys_and_kinds_of_lakehouse_summary(home: Path) -> None:
    settings = Settings.from_env()
    now = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    rows = [
        {"event_id": "a", "user_id": "u", "event_type": "v", "client_ts": "2024-05-01T11:30:00Z"},
        {"event_id": "b", "user_id": "u", "event_type": "v", "client_ts": "2024-05-01T07:10:00Z"},
    ]
    with EventWriter(settings, clock=lambda: now) as writer:
        writer.write(rows, batch_id="batch-1")
    snaps = [s.summary for s in open_events_table(settings).snapshots() if s.summary]
    kinds = sorted(s[summary.KIND] for s in snaps)
    assert kinds == sorted([summary.KIND_ON_TIME, summary.KIND_LATE]) == ["late", "on-time"]
    late = next(s for s in snaps if s[summary.KIND] == summary.KIND_LATE)
    # 07:10 closes at 08:00 + 1h = 09:00, before the 12:00 receipt: late, hour 07
    assert late[summary.LATE_HOURS] == "2024-05-01T07"
    assert late[summary.LATE] == "true"
    (key,) = {s[summary.BATCH_KEY] for s in snaps}  # one batch, one key on both snapshots
    assert late[summary.IDEMPOTENCY_KEY] == f"{key}/late"
    assert summary.WRITER in late
