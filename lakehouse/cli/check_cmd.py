"""``lakehouse check``: is every file there, readable, sorted; do the companions agree.

Exit codes: 0 the table is whole, 1 problems were found (listed), 2 usage or
configuration error, 75 the catalog could not be reached.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from lakehouse.cli.common import (
    EXIT_OK,
    EXIT_PROBLEMS,
    json_option,
    settings_options,
)
from lakehouse.errors import UsageError
from lakehouse.settings import Settings


@click.command("check")
@settings_options
@json_option
@click.option(
    "--deep", is_flag=True, help="Read every data file's footer and check every file's order."
)
@click.option(
    "--sample",
    type=click.IntRange(min=0),
    default=8,
    show_default=True,
    help="Without --deep: how many data files have their order checked.",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Which files the sample takes."
)
@click.option(
    "--repair-to-last-good",
    is_flag=True,
    help="When the current snapshot misses files, roll the table back to the newest "
    "snapshot of its history whose files all exist, expire the snapshots undone, drop "
    "their batches from the ingest log (the next ingest reads those files again), then "
    "check again.",
)
def check(
    settings: Settings,
    json_output: bool,
    deep: bool,
    sample: int,
    seed: int,
    repair_to_last_good: bool,
) -> None:
    """Check that the table is whole.

    Every file the retained snapshots reference exists (with --deep: each data file's
    footer reads and holds the rows its manifest says); every data file declares the
    table's sort order and is sorted by (client_ts, event_id) (a sample unless --deep);
    the companion tables exist and agree with the ingest log. The result is recorded in
    the table (`lakehouse health` shows it). Exit 0 whole, 1 problems found.
    """
    from catalog import open_catalog
    from maintenance.check import check_table, record_check
    from maintenance.rollback import repair_to

    catalog = open_catalog(settings)
    result = check_table(catalog, settings.table, deep=deep, sample=sample, seed=seed)
    rollback: Any = None
    if repair_to_last_good and result.current_snapshot_id != result.last_good_snapshot_id:
        if result.last_good_snapshot_id is None:
            raise UsageError(
                f"no snapshot of {settings.table}'s history has all its files: nothing to roll back to"
            )
        events = catalog.load_table(settings.table.identifier)
        try:
            ingested = catalog.load_table(settings.table.sibling("ingested").identifier)
        except Exception:  # a missing companion is reported by the check itself
            ingested = None
        rollback = repair_to(events, ingested, result.last_good_snapshot_id)
        result = check_table(catalog, settings.table, deep=deep, sample=sample, seed=seed)
    record_check(catalog.load_table(settings.table.identifier), result)
    if json_output:
        body = result.to_dict()
        if rollback is not None:
            body["rollback"] = rollback.to_dict()
        click.echo(json.dumps(body, separators=(",", ":")))
    else:
        _render(result, rollback)
    sys.exit(EXIT_OK if result.ok else EXIT_PROBLEMS)


def _render(result: Any, rollback: Any) -> None:
    if rollback is not None:
        click.echo(
            f"rolled {rollback.table} back to snapshot {rollback.to_snapshot_id} "
            f"({rollback.snapshots_undone} snapshots undone and expired); "
            f"{len(rollback.batches_to_reingest)} batches dropped from the ingest log: "
            "`lakehouse ingest` reads their files again"
        )
    click.echo(
        f"{result.table}: {'ok' if result.ok else f'{len(result.problems)} problems'} "
        f"({result.snapshots_checked} snapshots, {result.files_checked} files checked, "
        f"{result.sort_files_read} files' order read"
        + (f", {result.data_files_read} footers read" if result.deep else "")
        + f", {result.ingested_batches_checked} ingest-log batches)"
    )
    for problem in result.problems:
        where = f" {problem.path}" if problem.path else ""
        click.echo(f"  {problem.kind}:{where}: {problem.message}")
    if (
        result.last_good_snapshot_id is not None
        and result.last_good_snapshot_id != result.current_snapshot_id
    ):
        click.echo(
            f"the newest snapshot whose files all exist is {result.last_good_snapshot_id}: "
            "`lakehouse check --repair-to-last-good` rolls back to it"
        )
