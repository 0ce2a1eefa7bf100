"""``lakehouse rejects``: the records the writer refused, counted by reason, with samples."""

from __future__ import annotations

from typing import Any

import click

from lakehouse.cli.common import json_option, print_json, settings_options
from lakehouse.read.rejects import parse_since
from lakehouse.settings import Settings

_RAW_WIDTH = 120


def _short(raw: str | None) -> str:
    if raw is None:
        return "-"
    text = raw.replace("\n", "\\n")
    return text if len(text) <= _RAW_WIDTH else text[: _RAW_WIDTH - 1] + "…"


@click.command("rejects")
@click.option(
    "--since",
    default=None,
    metavar="D",
    help="Only records rejected at or after D: a time (2024-05-01, 2024-05-01T10:00Z; "
    "UTC unless it says otherwise) or a duration back from now (6h, 7d).",
)
@click.option(
    "--source",
    default=None,
    metavar="GLOB",
    help="Only records from sources matching this shell glob (* also matches /), "
    "e.g. '*/2024/05/01/*' or 'batch:*'.",
)
@click.option(
    "--samples",
    type=click.IntRange(min=0),
    default=3,
    show_default=True,
    help="Sample records shown per reason.",
)
@settings_options
@json_option
def rejects(
    since: str | None, source: str | None, samples: int, settings: Settings, json_output: bool
) -> None:
    """Show the records the writer refused (table NAME_rejected): how many per reason,
    when, and a few samples of each with their source, line and payload as received.

    Reasons are counted by kind: "invalid JSON: <details>" counts as "invalid JSON" and
    "client_ts: not an ISO-8601 timestamp: 'x'" as "client_ts: not an ISO-8601 timestamp". With --json: one object with `records`, `by_reason` (reason ->
    count) and `reasons` (per reason: count, first and last time, samples).
    Python: `lakehouse.rejected(since=..., source=...)` gives the same rows as a LazyFrame.
    """
    from lakehouse.read.rejects import rejected, rejects_summary

    start = parse_since(since)
    summary = rejects_summary(rejected(settings, since=start, source=source), samples=samples)
    total = sum(r.records for r in summary)
    if json_output:
        out: dict[str, Any] = {
            "table": f"{settings.table}_rejected",
            "since": start,
            "source": source,
            "records": total,
            "by_reason": {r.reason: r.records for r in summary},
            "reasons": [r.to_dict() for r in summary],
        }
        print_json(out)
        return
    scope = "".join(
        [f" since {start.isoformat()}" if start else "", f" from {source!r}" if source else ""]
    )
    if not summary:
        click.echo(f"no rejected records in {settings.table}_rejected{scope}")
        return
    click.echo(f"{total:,} rejected record(s) in {settings.table}_rejected{scope}")
    width = max(len(r.reason) for r in summary)
    for r in summary:
        click.echo(
            f"  {r.records:>9,}  {r.reason:<{width}}  "
            f"{r.first_rejected_at:%Y-%m-%d %H:%M} .. {r.last_rejected_at:%Y-%m-%d %H:%M}"
        )
    for r in summary:
        if not r.samples:
            continue
        click.echo(f"\n{r.reason}:")
        for s in r.samples:
            where = s["source"] + (f":{s['line']}" if s["line"] is not None else "")
            click.echo(f"  {where}\n    {s['reason']}\n    {_short(s['raw'])}")
