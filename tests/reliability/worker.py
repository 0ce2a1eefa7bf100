"""A writer process for the soak and the catalog-fault runs.

    python -m tests.reliability.worker --writer 1 --journal J --seed 7 --seconds 60

It writes batches through :class:`writers.EventWriter`, each with its own ``batch_id``,
and appends one JSON line to its journal (flushed and fsynced) only after the batch's
commit returned: the journal is what the writer was told is durable. A batch holds
on-time events (client time in the last minutes), late events (hours to days ago,
received now) and resends: earlier events of this writer, and events of a pool shared by
every writer (identical rows, so concurrent writers can commit the same event twice;
maintenance removes such duplicates). A failed commit is retried with the same batch (same
key) until it lands; each failure is journaled with its error type.

Own event ids read ``w<writer>-b<batch>-<size>-<i>`` so a reader can tell a whole batch
from a partial one; shared ids read ``sh-<k>``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

SHARED_PREFIX = "sh-"


def shared_event(k: int, start: datetime) -> dict[str, Any]:
    """Event ``k`` of the shared pool: the same row whichever writer sends it."""
    client = start - timedelta(hours=2, seconds=7 * (k % 3000) + 1)
    return {
        "event_id": f"{SHARED_PREFIX}{k}",
        "user_id": f"u{k % 97}",
        "event_type": ("view", "click", "buy")[k % 3],
        "client_ts": client.isoformat(),
        "server_ts": start.isoformat(),
        "properties": {"shared": k},
    }


def own_id(writer: int, batch: int, size: int, i: int) -> str:
    return f"w{writer}-b{batch:05d}-{size}-{i}"


def parse_own(event_id: str) -> tuple[str, int] | None:
    """(batch tag, batch size) of an own id; None for shared ids."""
    if event_id.startswith(SHARED_PREFIX):
        return None
    writer, batch, size, _ = event_id.split("-")
    return f"{writer}-{batch}", int(size)


def make_batch(
    rng: random.Random,
    writer: int,
    batch: int,
    history: list[dict[str, Any]],
    args: argparse.Namespace,
) -> tuple[list[dict[str, Any]], list[str]]:
    now = datetime.now(UTC)
    size = rng.randint(args.min_size, args.max_size)
    rows: list[dict[str, Any]] = []
    for i in range(size):
        late = rng.random() < args.late_rate
        ago = (
            timedelta(seconds=rng.randrange(3 * 3600, args.late_hours * 3600))
            if late
            else timedelta(seconds=rng.randrange(0, 600))
        )
        client = now - ago - timedelta(microseconds=rng.randrange(10**6))
        rows.append(
            {
                "event_id": own_id(writer, batch, size, i),
                "user_id": f"u{rng.randrange(500)}",
                "event_type": rng.choice(("app_open", "view", "click", "buy")),
                "client_ts": client.isoformat(),
                "server_ts": now.isoformat(),
                "properties": {"w": writer, "b": batch},
            }
        )
    resent: list[str] = []
    if history and rng.random() < 0.5:
        for row in rng.sample(history, k=min(len(history), rng.randint(1, 5))):
            rows.append(row)
            resent.append(row["event_id"])
    if args.shared and rng.random() < 0.7:
        # Every writer sends the events of the current time slot (the same new ids at the
        # same moment: real races), and a few older ones from the pool.
        start = datetime.fromisoformat(args.start)
        slot = int(time.time() // 2)
        picks = {slot * args.shared + j for j in range(args.shared)}
        picks.update(rng.sample(range((slot - 30) * args.shared, slot * args.shared), k=3))
        for k in sorted(picks):
            rows.append(shared_event(k, start))
            resent.append(f"{SHARED_PREFIX}{k}")
    history.extend(rows[:size][:: max(1, size // 3)])
    rng.shuffle(rows)
    return rows, resent


def journal(path: str, entry: dict[str, Any]) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(entry) + "\n")
        f.flush()
        os.fsync(f.fileno())


CONFLICTS = [0]


def count_conflicts() -> None:
    """Count the commits the catalog refused (pyiceberg then retries on the new head)."""
    from pyiceberg.catalog.sql import SqlCatalog
    from pyiceberg.exceptions import CommitFailedException

    commit = SqlCatalog.commit_table

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return commit(self, *args, **kwargs)
        except CommitFailedException:
            CONFLICTS[0] += 1
            raise

    SqlCatalog.commit_table = counted  # type: ignore[method-assign]


def barrier(spec: str) -> None:
    """``DIR:N``: announce readiness in DIR, then wait until N writers are ready."""
    folder, n = spec.rsplit(":", 1)
    path = os.path.join(folder, f"ready-{os.getpid()}")
    open(path, "w").close()
    while len([f for f in os.listdir(folder) if f.startswith("ready-")]) < int(n):
        time.sleep(0.05)


def _open_writer(args: argparse.Namespace) -> Any:
    from writers import EventWriter

    while True:  # the catalog may be down (a restart): keep trying, journal each failure
        try:
            return EventWriter(max_records=1 << 62, max_bytes=1 << 62, max_age=1e12)
        except Exception as exc:
            journal(
                args.journal, {"error": type(exc).__name__, "message": str(exc)[:500], "at": "open"}
            )
            time.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--writer", type=int, required=True)
    parser.add_argument("--journal", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--batches", type=int, default=0, help="stop after this many (0: by time)")
    parser.add_argument("--min-size", type=int, default=20)
    parser.add_argument("--max-size", type=int, default=80)
    parser.add_argument("--late-rate", type=float, default=0.3)
    parser.add_argument(
        "--late-hours", type=int, default=8, help="late events are 3h to this many hours old"
    )
    parser.add_argument("--pause", type=float, default=0.5, help="max seconds between batches")
    parser.add_argument(
        "--shared", type=int, default=0, help="shared events per time slot (0: none)"
    )
    parser.add_argument("--start", default=datetime.now(UTC).isoformat())
    parser.add_argument("--barrier", default=None, help="DIR:N: start together with N writers")
    args = parser.parse_args()
    rng = random.Random(args.seed * 100 + args.writer)
    count_conflicts()
    writer = _open_writer(args)
    if args.barrier:
        barrier(args.barrier)
    deadline = time.monotonic() + args.seconds  # from the first batch: imports can be slow
    history: list[dict[str, Any]] = []
    batch = 0
    while (args.batches and batch < args.batches) or (
        not args.batches and time.monotonic() < deadline
    ):
        rows, resent = make_batch(rng, args.writer, batch, history, args)
        tag = f"w{args.writer}-b{batch:05d}"
        writer.write(rows, batch_id=tag)
        attempts = 0
        while True:
            attempts += 1
            try:
                result = writer.flush()
                break
            except Exception as exc:  # journaled, then the same batch (same key) again
                journal(
                    args.journal,
                    {"error": type(exc).__name__, "message": str(exc)[:500], "batch": tag},
                )
                time.sleep(min(2.0, 0.2 * attempts))
                if attempts % 5 == 0:
                    pending = writer._buffer  # a fresh handle after repeated failures
                    writer = _open_writer(args)
                    writer._buffer = pending
        journal(
            args.journal,
            {
                "batch": tag,
                "own": [r["event_id"] for r in rows if r["event_id"].startswith(tag + "-")],
                "resent": resent,
                "rows": {
                    r["event_id"]: [r["user_id"], r["event_type"], r["client_ts"]] for r in rows
                },
                "written": result.records_written,
                "duplicates": result.duplicates_dropped,
                "late": result.late_records,
                "already": result.already_committed,
                "attempts": attempts,
                "conflicts": CONFLICTS[0],
                "t": time.time(),
            },
        )
        batch += 1
        if args.pause:
            time.sleep(rng.uniform(0, args.pause))


if __name__ == "__main__":
    main()
