"""Text rendering of results (logic stays elsewhere)."""

from __future__ import annotations

from typing import Any

import click


def _human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def print_pairs(title: str, pairs: list[tuple[str, Any]]) -> None:
    click.secho(title, bold=True)
    width = max(len(k) for k, _ in pairs) if pairs else 0
    for key, value in pairs:
        if isinstance(value, float):
            value = f"{value:,.2f}"
        elif isinstance(value, int) and not isinstance(value, bool):
            value = f"{value:,}"
        click.echo(f"  {key.ljust(width)}  {value}")


def ingest_pairs(d: dict[str, Any]) -> list[tuple[str, Any]]:
    return [
        ("files ingested", d["files"]),
        *(
            [("  of which grown (new bytes read)", d["files_grown"])]
            if d.get("files_grown")
            else []
        ),
        *(
            [("  of which changed (read again)", d["files_reread"])]
            if d.get("files_reread")
            else []
        ),
        ("files already ingested", d["files_skipped"]),
        *(
            [("files left for the next run", d["files_deferred"] + d["files_waiting"])]
            if d.get("files_deferred") or d.get("files_waiting")
            else []
        ),
        ("bytes read", _human_bytes(d["bytes_read"])),
        ("commits", d["commits"]),
        ("records read", d["records_read"]),
        ("records written", d["records_written"]),
        ("  of which late", d["late_records"]),
        ("duplicates dropped", d["duplicates_dropped"]),
        ("records rejected", d["records_rejected"]),
        ("time", f"{d['seconds']:.2f} s ({d['events_per_second']:,.0f} events/s)"),
    ]


def health_pairs(d: dict[str, Any]) -> list[tuple[str, Any]]:
    pairs: list[tuple[str, Any]] = [
        ("table", d["table"]),
        ("records", d["total_records"]),
        ("snapshots", d["snapshots"]),
        ("data files", d["data_files"]),
        ("data size", _human_bytes(d["total_bytes"])),
        ("small files", d["small_files"]),
        ("hour partitions", d["hour_partitions"]),
        ("files per hour (max)", d["max_files_per_hour"]),
        ("files per hour (mean)", d["mean_files_per_hour"]),
        ("late snapshots", d["late_snapshots"]),
        ("late events committed", d["late_records"]),
        ("rejected records", d["rejected_records"]),
        ("landing files ingested", d["ingested_files"]),
    ]
    repeated = {"table", "checked_at", "data_files", "snapshots"}
    for key, value in (d.get("maintenance") or {}).items():
        if isinstance(value, (dict, list)) or key in repeated or key.endswith("_seconds"):
            continue
        pairs.append((f"maintenance: {key.replace('_', ' ')}", value if value is not None else "-"))
    return pairs
