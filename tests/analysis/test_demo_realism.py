"""The demo's users keep their device: one platform per user, a few with a second one."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime

from lakehouse.demo import PLATFORMS, DemoSpec, generate_events


def test_users_keep_their_device() -> None:
    rows = generate_events(DemoSpec(events=20_000, seed=3), datetime(2024, 5, 4, tzinfo=UTC))
    platforms: dict[str, set[str]] = defaultdict(set)
    sessions: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        platforms[r["user_id"]].add(r["platform"])
        sessions[r["session_id"]].add(r["platform"])
    assert all(len(p) == 1 for p in sessions.values())  # a session stays on one platform
    per_user = Counter(len(p) for p in platforms.values())
    assert set(per_user) <= {1, 2}  # never three
    assert 0 < per_user[2] <= 0.12 * len(platforms)  # rarely two
    # the platforms keep their overall shares (45/35/20 %) across users
    firsts = Counter(min(p) if len(p) == 1 else "two" for p in platforms.values())
    singles = sum(n for k, n in firsts.items() if k != "two")
    for name, share in PLATFORMS:
        assert abs(firsts[name] / singles - share) < 0.06, (name, firsts)
