"""``lakehouse maintain``: plan, run once (cron, Kubernetes CronJob, Airflow) or serve.

Exit codes: 0 everything ran (also when another scheduler holds the lease: nothing to
do), 1 a group or job failed, 2 usage or configuration error, 75 the catalog could not be
reached (transient: run again later). ``serve`` never exits on a failed run: it logs the
failure in one line and runs again after ``--every``.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import Any, TypeVar

import click

from lakehouse.cli.common import (
    EXIT_OK,
    EXIT_PROBLEMS,
    Duration,
    json_option,
    json_text,
    print_json,
    settings_options,
)
from lakehouse.durations import format_duration
from lakehouse.engines import get_engine
from lakehouse.engines import names as engine_names
from lakehouse.errors import LakehouseError, UsageError
from lakehouse.settings import Settings, parse_size

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])


def _size(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return parse_size(value)
    except UsageError as exc:
        raise click.BadParameter(str(exc)) from exc


def compaction_options(func: F) -> F:
    for decorator in reversed(
        [
            click.option(
                "--target-file-size",
                callback=_size,
                help="On-disk size rewritten files aim at, e.g. 128MB [env LAKEHOUSE_TARGET_FILE_SIZE; default 128MB].",
            ),
            click.option(
                "--max-group-size",
                callback=_size,
                help="On-disk input bytes per rewrite group; memory stays a few times this [default 512MB].",
            ),
            click.option(
                "--max-commits",
                type=click.IntRange(min=1),
                default=None,
                help="Commit the run's rewrite groups in at most this many snapshots; a commit "
                "that loses to a concurrent change loses only its own groups [table property "
                "lakehouse.compaction.max-commits; default 10].",
            ),
            click.option(
                "--hot-window",
                type=Duration(),
                default=None,
                help="An hour is left alone until this long after it ends [default: the allowed lateness, 1h].",
            ),
        ]
    ):
        func = decorator(func)
    return func


def run_options(func: F) -> F:
    for decorator in reversed(
        [
            click.option(
                "--snapshot-retention",
                type=Duration(),
                default="5d",
                show_default=True,
                help="Expire snapshots older than this.",
            ),
            click.option(
                "--retain-last",
                type=click.IntRange(min=1),
                default=1,
                show_default=True,
                help="Keep at least this many snapshots per branch, however old.",
            ),
            click.option(
                "--orphan-retention",
                type=Duration(),
                default="3d",
                show_default=True,
                help="Delete unreferenced files only when older than this (in-flight writes look like orphans); under 24h needs --force.",
            ),
            click.option(
                "--force",
                is_flag=True,
                help="Accept an --orphan-retention under 24h (only when nothing writes to the table meanwhile).",
            ),
            click.option(
                "--max-manifests",
                type=click.IntRange(min=1),
                default=8,
                show_default=True,
                help="Rewrite the data manifests of the current snapshot when there are more than this.",
            ),
            click.option(
                "--dry-run", is_flag=True, help="Change nothing: report what each job would do."
            ),
            click.option(
                "--no-lease",
                is_flag=True,
                help="Do not take the table's maintenance lease (a single scheduler, or a REST catalog).",
            ),
            click.option(
                "--lease-ttl",
                type=Duration(),
                default="15m",
                show_default=True,
                help="How long the lease lasts without renewal.",
            ),
        ]
    ):
        func = decorator(func)
    return func


def _compaction(
    settings: Settings,
    target_file_size: int | None,
    max_group_size: int | None,
    hot_window: timedelta | None,
    max_commits: int | None = None,
) -> Any:
    from maintenance import CompactionOptions

    return CompactionOptions.from_settings(
        settings,
        target_file_size=target_file_size,
        max_group_bytes=max_group_size,
        hot_window=hot_window,
        max_commits=max_commits,
    )


def _maintenance_options(settings: Settings, kw: dict[str, Any]) -> Any:
    from maintenance import MaintenanceOptions

    return MaintenanceOptions(
        compaction=_compaction(
            settings,
            kw["target_file_size"],
            kw["max_group_size"],
            kw["hot_window"],
            kw["max_commits"],
        ),
        snapshot_retention=kw["snapshot_retention"],
        retain_last=kw["retain_last"],
        orphan_retention=kw["orphan_retention"],
        max_manifests=kw["max_manifests"],
        dry_run=kw["dry_run"],
        lease=not kw["no_lease"],
        lease_ttl=kw["lease_ttl"],
        force=kw["force"],
    )


def _events_table(settings: Settings) -> Any:
    from lakehouse.tables import open_events_table

    return open_events_table(settings)


def _reporter(json_output: bool) -> Any:
    from maintenance import NullReporter, RichReporter

    return RichReporter() if sys.stderr.isatty() and not json_output else NullReporter()


@contextmanager
def graceful_stop() -> Iterator[threading.Event]:
    """SIGTERM/SIGINT set the yielded event (finish the current group, then stop); a
    second signal interrupts at once. Handlers are restored on exit."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        log.warning("received %s: stopping after the current group", signal.Signals(signum).name)
        stop.set()

    if (
        threading.current_thread() is not threading.main_thread()
    ):  # signals only reach the main thread
        yield stop
        return
    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@click.group("maintain")
def maintain() -> None:
    """Keep the events table fast and small.

    Compaction (late-aware, sorted, deduplicated), manifest rewriting, snapshot expiry with
    file cleanup and orphan removal. `plan` shows what compaction would do; `run` does
    everything once (for cron, a Kubernetes CronJob or Airflow); `serve` runs it in a loop.
    """


@maintain.command("plan")
@settings_options
@json_option
@compaction_options
@click.option(
    "--files", "show_files", is_flag=True, help="List the files of each group (text output)."
)
def plan_cmd(
    settings: Settings,
    json_output: bool,
    show_files: bool,
    target_file_size: int | None,
    max_group_size: int | None,
    hot_window: timedelta | None,
    max_commits: int | None,
) -> None:
    """Show the compaction plan: which hours, which files, and why. Changes nothing."""
    from maintenance import plan_compaction

    table = _events_table(settings)
    plan = plan_compaction(
        table, _compaction(settings, target_file_size, max_group_size, hot_window, max_commits)
    )
    if json_output:
        print_json(plan.to_dict())
        return
    click.echo(
        f"{plan.table} at snapshot {plan.snapshot_id}: {plan.hours_total} hours "
        f"({plan.hours_hot} hot, {plan.hours_clean} clean, {plan.hours_selected} to compact)"
    )
    if not plan.groups:
        click.echo("nothing to compact")
    for group in plan.groups:
        click.echo(
            f"  {group.group_id:<18} {len(group.files):>6} files {_mb(group.bytes):>10}  "
            f"{', '.join(group.reasons)}"
        )
        if show_files:
            for info in group.files:
                click.echo(f"      {info.path} ({info.size} B, {info.records} rows)")
    for skip in plan.skipped:
        click.echo(f"  {skip.hour} skipped: {skip.reason}")
    click.echo(
        f"total: {len(plan.groups)} groups, {plan.files} files, {_mb(plan.bytes)}, "
        f"in {len(plan.batches())} commits (at most {plan.max_commits})"
    )


@maintain.command("run")
@click.option(
    "--engine",
    type=click.Choice(engine_names("maintenance")),
    default="python",
    show_default=True,
    help="Who rewrites the files: this process (python); a running `lakehouse trino` "
    "server (ALTER TABLE ... EXECUTE optimize per planned hour, expire_snapshots, "
    "remove_orphan_files), for tables bigger than one machine should rewrite; or Athena "
    "(OPTIMIZE ... REWRITE DATA USING BIN_PACK per planned hour, VACUUM). The plan and the "
    "result counts are the same.",
)
@settings_options
@json_option
@compaction_options
@run_options
def run_cmd(settings: Settings, json_output: bool, engine: str, **kw: Any) -> None:
    """Run compaction, manifest rewriting, snapshot expiry and orphan removal once.

    SIGTERM or SIGINT lets the current group commit, skips the remaining jobs and gives
    the lease back; a second signal stops at once.
    """
    options = _maintenance_options(settings, kw)
    with graceful_stop() as stop:
        maintain = get_engine(engine).load("maintenance")
        result = maintain(
            settings, options, reporter=_reporter(json_output), should_stop=stop.is_set
        )
    _emit(result, json_output)
    sys.exit(EXIT_OK if result.ok else EXIT_PROBLEMS)


@maintain.command("serve")
@settings_options
@json_option
@compaction_options
@run_options
@click.option(
    "--every", type=Duration(), default="10m", show_default=True, help="Time between runs."
)
@click.option(
    "--max-runs",
    type=click.IntRange(min=0),
    default=0,
    help="Stop after this many runs (0: forever).",
)
def serve_cmd(
    settings: Settings, json_output: bool, every: timedelta, max_runs: int, **kw: Any
) -> None:
    """Run maintenance every --every until SIGTERM or SIGINT.

    A signal lets the current group commit, gives the lease back and exits 0; a second
    signal stops at once. A per-table lease keeps two schedulers off one table. A run that
    fails (the catalog unreachable, a bug) is reported in one line on stderr (with the
    traceback under -v) and the next run comes --every later, as usual.
    """
    options = _maintenance_options(settings, kw)
    with graceful_stop() as stop:
        serve_loop(
            settings, options, every=every, max_runs=max_runs, stop=stop, json_output=json_output
        )
    sys.exit(EXIT_OK)


def serve_loop(
    settings: Settings,
    options: Any,
    *,
    every: timedelta,
    max_runs: int = 0,
    stop: threading.Event | None = None,
    json_output: bool = False,
) -> tuple[int, int]:
    """Run maintenance every ``every`` until ``stop`` is set or ``max_runs`` runs (0:
    forever) are done. A run that raises is reported and does not end the loop. Returns
    (runs, failed runs)."""
    from maintenance import run_maintenance
    from maintenance.lease import default_owner

    stop = stop or threading.Event()
    owner = default_owner()  # one owner for every run: a lease left by a failed run is ours
    runs = failed = 0
    while not stop.is_set():
        try:
            table = _events_table(settings)
            result = run_maintenance(
                table,
                options,
                reporter=_reporter(json_output),
                should_stop=stop.is_set,
                owner=owner,
            )
            _emit(result, json_output, one_line=True)
        except Exception as exc:  # e.g. the catalog is briefly down: try again next time
            failed += 1
            _report_failed_run(exc, json_output)
        runs += 1
        if max_runs and runs >= max_runs:
            break
        stop.wait(every.total_seconds())
    return runs, failed


def _report_failed_run(exc: Exception, json_output: bool) -> None:
    """One line on stderr (JSON with --json); the traceback only with -v."""
    from lakehouse.cli.group import error_record
    from lakehouse.redact import redact_text

    retryable = bool(getattr(exc, "retryable", False))
    message = redact_text(" ".join(str(exc).splitlines()))
    if json_output:
        click.echo(json_text(error_record(exc, with_exit_code=False)), err=True)
    else:
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        kind = "" if isinstance(exc, LakehouseError) else f"{type(exc).__name__}: "
        again = "will run again" if retryable else "will run again, but this may need a fix"
        click.echo(f"{stamp} maintenance run failed ({again}): {kind}{message}", err=True)
    if log.isEnabledFor(logging.INFO):  # -v
        log.info("the failed maintenance run", exc_info=exc)


def _emit(result: Any, json_output: bool, *, one_line: bool = False) -> None:
    if json_output:
        if one_line:
            click.echo(json_text(result.to_dict()))  # one line per run, even on a terminal
        else:
            print_json(result.to_dict())
        return
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if result.skipped_reason:
        click.echo(f"{stamp} {result.table}: skipped: {result.skipped_reason}")
        return
    counts = result.counts()
    verb = "would " if result.dry_run else ""
    took = format_duration(result.finished_at - result.started_at)
    if one_line:
        text = " ".join(f"{k}={v}" for k, v in counts.items())
        click.echo(f"{stamp} {result.table}: {'ok' if result.ok else 'FAILED'} in {took} {text}")
    else:
        click.echo(
            f"{result.table}: maintenance {'(dry run) ' if result.dry_run else ''}"
            f"{'ok' if result.ok else 'had failures'} in {took}"
        )
        c, m, e, o = result.compaction, result.manifests, result.expiry, result.orphans
        if c:
            click.echo(
                f"  compaction: {verb}rewrite {c.files_rewritten} files ({_mb(c.bytes_rewritten)}) "
                f"in {c.groups_committed or c.groups_planned} groups ({c.commits} commits) "
                f"into {c.files_added} files; "
                f"{c.duplicates_removed} duplicates removed; {c.groups_skipped} skipped"
            )
        if m:
            click.echo(
                f"  manifests: {m.manifests_before} -> {m.manifests_after}"
                + (" (would rewrite)" if m.dry_run and m.rewritten else "")
            )
        if e:
            click.echo(
                f"  expiry: {verb}expire {e.snapshots_expired} snapshots, {verb}delete {e.files_deleted} files "
                f"({e.data_files_deleted} data, {e.manifests_deleted} manifests, "
                f"{e.manifest_lists_deleted} manifest lists, {e.metadata_files_deleted} metadata)"
            )
        if o:
            click.echo(
                f"  orphans: {o.orphans_found} found, {o.orphans_deleted} deleted, "
                f"{o.orphans_too_recent} inside the window"
            )
            if o.dry_run:
                for path in o.orphan_paths:
                    click.echo(f"    {path}")
    for failure in result.failures:
        click.echo(
            f"group {failure.group_id} failed: {failure.error_type}: {failure.message}", err=True
        )
    for job in result.job_failures:
        click.echo(f"job {job.job} failed: {job.error_type}: {job.message}", err=True)


def _mb(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MB"
