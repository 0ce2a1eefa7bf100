"""``lakehouse funnel``: users through a sequence of steps, by any registered engine."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import click

from lakehouse.cli.common import Duration, json_option, print_json, settings_options
from lakehouse.durations import format_duration, parse_duration
from lakehouse.errors import UsageError
from lakehouse.funnels.engines import ENGINES, FunnelRequest, run_funnel
from lakehouse.funnels.result import FunnelResult, FunnelStep
from lakehouse.funnels.spec import MODES, parse_exclusion
from lakehouse.settings import Settings


def parse_steps(text: str) -> tuple[str, ...]:
    steps = tuple(s.strip() for s in text.split(","))
    if not text.strip() or any(not s for s in steps):
        raise UsageError(f"--steps must be event types separated by commas, got {text!r}")
    return steps


def parse_step_windows(texts: tuple[str, ...]) -> tuple[tuple[int, timedelta], ...]:
    """``3=10m`` -> ``(3, 10 minutes)``."""
    out = []
    for text in texts:
        step, eq, duration = text.partition("=")
        if not eq or not step.strip().isdigit():
            raise UsageError(f"--step-window wants STEP=DURATION (e.g. 3=10m), got {text!r}")
        out.append((int(step), parse_duration(duration.strip())))
    return tuple(out)


def parse_time(text: str | None, flag: str) -> datetime | None:
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise UsageError(f"{flag}: cannot read {text!r}; write it like 2024-05-01T10:00Z") from exc


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 10:
        return f"{value:.1f}s"
    return format_duration(timedelta(seconds=round(value)))


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _print_steps(steps: tuple[FunnelStep, ...], indent: str = "  ") -> None:
    width = max(len("step"), *(len(s.step) for s in steps))
    click.echo(
        f"{indent}{'step'.ljust(width)}  {'users':>10}  {'from previous':>13}  "
        f"{'from first':>10}  {'median time':>11}"
    )
    for s in steps:
        click.echo(
            f"{indent}{s.step.ljust(width)}  {s.users:>10,}  "
            f"{_percent(s.conversion_from_previous):>13}  {_percent(s.conversion_from_first):>10}  "
            f"{_seconds(s.median_seconds_to_step):>11}"
        )


def render(result: FunnelResult) -> None:
    """The funnel as text: the overall steps, then one block per breakdown value."""
    pinned = f", snapshot {result.snapshot_id}" if result.snapshot_id is not None else ""
    click.secho(
        f"funnel ({result.mode} mode, window {format_duration(result.window)}, "
        f"{result.engine}{pinned})",
        bold=True,
    )
    _print_steps(result.steps)
    if result.breakdown_by is not None:
        for group in result.breakdown:
            value = "(no value)" if group.value is None else group.value
            click.secho(f"{result.breakdown_by} = {value}", bold=True)
            _print_steps(group.steps)


@click.command("funnel")
@click.option(
    "--steps",
    required=True,
    help="Event types in funnel order, separated by commas (a name may repeat).",
)
@click.option(
    "--window",
    type=Duration(),
    default="1d",
    show_default=True,
    help="Every step must be within this of the first step (e.g. 30m, 6h, 1d).",
)
@click.option(
    "--engine",
    type=click.Choice(sorted(ENGINES)),
    default="polars",
    show_default=True,
    help="Where the funnel is computed.",
)
@click.option(
    "--mode",
    type=click.Choice(MODES),
    default="window",
    show_default=True,
    help="window: ClickHouse windowFunnel semantics; strict: also no other event of the "
    "user between two consecutive steps.",
)
@click.option(
    "--breakdown",
    default=None,
    help="Also one funnel per value of this column (e.g. platform) or properties.<key>.",
)
@click.option(
    "--snapshot",
    "snapshot_id",
    type=int,
    default=None,
    help="Read this snapshot (default: current).",
)
@click.option(
    "--exclude",
    "exclude",
    multiple=True,
    metavar="TYPE[@STEP]",
    help="A user who does TYPE between step STEP and STEP+1 (any two consecutive steps "
    "without @STEP) drops off at step STEP. Repeatable.",
)
@click.option(
    "--hold",
    default=None,
    metavar="COLUMN",
    help="Every step of a conversion must have the same value of this column (e.g. "
    "session_id) or properties.<key>.",
)
@click.option(
    "--step-window",
    "step_windows",
    multiple=True,
    metavar="STEP=DURATION",
    help="Step STEP (2..K) must come within DURATION of the first step, instead of "
    "--window (e.g. 3=10m). Repeatable.",
)
@click.option("--start", default=None, help="Only events with client_ts >= this (ISO 8601).")
@click.option("--end", default=None, help="Only events with client_ts < this (ISO 8601).")
@settings_options
@json_option
def funnel(
    settings: Settings,
    json_output: bool,
    steps: str,
    window: timedelta,
    engine: str,
    mode: str,
    breakdown: str | None,
    snapshot_id: int | None,
    start: str | None,
    end: str | None,
    exclude: tuple[str, ...],
    hold: str | None,
    step_windows: tuple[str, ...],
) -> None:
    """Count the users who go through STEPS in order within WINDOW.

    Each step counts the users whose furthest step reached (in order, every step within
    the window of the first) is at least that step, with conversion from the previous and
    the first step and the median time from the first step. No steps, a window of 0 or an
    unknown snapshot are usage errors (exit 2).
    """
    request = FunnelRequest(
        steps=parse_steps(steps),
        window=window,
        mode=mode,  # type: ignore[arg-type]
        breakdown=breakdown,
        snapshot_id=snapshot_id,
        start=parse_time(start, "--start"),
        end=parse_time(end, "--end"),
        exclude=tuple(parse_exclusion(x) for x in exclude),
        hold=hold,
        step_windows=parse_step_windows(step_windows),
    )
    result = run_funnel(settings, request, engine=engine)
    if json_output:
        out: dict[str, Any] = {"table": str(settings.table), **result.to_dict()}
        print_json(out)
    else:
        render(result)
