"""``lakehouse snapshots``: the snapshots a reader can pin (``--snapshot ID``)."""

from __future__ import annotations

from typing import Any

import click

from lakehouse.cli.common import json_option, print_json, settings_options
from lakehouse.settings import Settings


def _rows(settings: Settings) -> list[dict[str, Any]]:
    from lakehouse.read.history import snapshot_rows
    from lakehouse.tables import open_events_table

    return snapshot_rows(open_events_table(settings))


@click.command("snapshots")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the newest N.")
@settings_options
@json_option
def snapshots(settings: Settings, json_output: bool, limit: int | None) -> None:
    """List the events table's snapshots, oldest first; the current one is marked `*`,
    and `~` marks the first half of a batch committed as on-time + late snapshots (do not
    pin it: it lacks the batch's late rows).

    Readers pin one to keep reading exactly that state while writers go on:
    `lakehouse funnel --snapshot ID`, or `lakehouse.events(snapshot_id=ID)` in Python.
    KIND is `on-time` or `late` for writer commits, `compaction` etc. for maintenance.
    """
    rows = _rows(settings)
    if limit is not None:
        rows = rows[-limit:]
    current = next((r["snapshot_id"] for r in rows if r["is_current"]), None)
    if json_output:
        print_json(
            {"table": str(settings.table), "current_snapshot_id": current, "snapshots": rows}
        )
        return
    if not rows:
        click.echo(f"{settings.table} has no snapshots yet")
        return
    click.echo(
        f"  {'snapshot_id':>20}  {'committed_at (UTC)':<23}  {'operation':<9}  "
        f"{'kind':<16}  {'added':>10}  {'total':>12}"
    )
    for r in rows:
        mark = "*" if r["is_current"] else (" " if r["complete"] else "~")
        when = r["committed_at"].strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        click.echo(
            f"{mark} {r['snapshot_id']:>20}  {when:<23}  {r['operation'] or '-':<9}  "
            f"{r['kind'] or '-':<16}  {_count(r['added_records']):>10}  "
            f"{_count(r['total_records']):>12}"
        )


def _count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"
