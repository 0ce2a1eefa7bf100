"""Maintenance jobs are a registry: every runner (Python, Trino, Athena) runs the jobs of
the registry it is given, in order, and refuses a job its registry does not know before
anything runs (no lease taken, no run recorded)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pyiceberg.table import Table

from lakehouse.errors import UsageError
from lakehouse.settings import Settings
from maintenance import LAST_RUN_PROPERTY, LEASE_PROPERTY, MaintenanceOptions, run_maintenance
from maintenance.jobs import JOBS, PYTHON_JOBS, Job, JobRegistry, JobRun

Runner = Callable[[Table, Settings, MaintenanceOptions, str], Any]


def _without(registry: JobRegistry[Any], name: str) -> JobRegistry[Any]:
    return JobRegistry(registry.engine, [job for job in registry if job.name != name])


def _python(table: Table, settings: Settings, options: MaintenanceOptions, drop: str) -> Any:
    return run_maintenance(table, options, jobs=_without(PYTHON_JOBS, drop))


def _trino(table: Table, settings: Settings, options: MaintenanceOptions, drop: str) -> Any:
    from lakehouse.engines.trino.maintenance import TRINO_JOBS, run_maintenance_with_trino

    # port 9: nothing listens there; the check must come before any connection
    return run_maintenance_with_trino(
        settings, options, port=9, table=table, jobs=_without(TRINO_JOBS, drop)
    )


class _NoAthena:
    def run(self, sql: str) -> Any:
        raise AssertionError(f"nothing may be sent: {sql}")


def _athena(table: Table, settings: Settings, options: MaintenanceOptions, drop: str) -> Any:
    from lakehouse.engines.athena.maintenance import ATHENA_JOBS, run_maintenance_with_athena

    return run_maintenance_with_athena(
        settings,
        options,
        client=_NoAthena(),  # type: ignore[arg-type]
        table=table,
        jobs=_without(ATHENA_JOBS, drop),
    )


RUNNERS = {"python": _python, "trino": _trino, "athena": _athena}


@pytest.mark.parametrize("runner", sorted(RUNNERS))
@pytest.mark.parametrize("job", JOBS)
def test_a_job_the_runner_does_not_know_is_an_error_before_anything_runs(
    runner: str, job: str, events: Table, settings: Settings
) -> None:
    location = events.metadata_location
    options = MaintenanceOptions(jobs=("compaction", "manifests", "expiry", "orphans"))
    with pytest.raises(UsageError, match=f"unknown maintenance job '{job}' for the {runner}"):
        RUNNERS[runner](events, settings, options, job)
    events.refresh()
    assert events.metadata_location == location  # no lease taken, nothing committed
    assert LEASE_PROPERTY not in events.properties
    assert LAST_RUN_PROPERTY not in events.properties


def test_every_runner_knows_every_job() -> None:
    from lakehouse.engines.athena.maintenance import ATHENA_JOBS
    from lakehouse.engines.trino.maintenance import TRINO_JOBS

    assert JOBS == ("compaction", "manifests", "expiry", "orphans")
    assert PYTHON_JOBS.names == TRINO_JOBS.names == ATHENA_JOBS.names == JOBS


def test_unknown_job_names_are_refused_by_the_options_and_the_registry() -> None:
    with pytest.raises(UsageError, match="unknown maintenance jobs \\['vacuum'\\]"):
        MaintenanceOptions(jobs=("compaction", "vacuum"))
    with pytest.raises(UsageError, match="choose from compaction, manifests, expiry, orphans"):
        PYTHON_JOBS.get("vacuum")
    with pytest.raises(ValueError, match="registered twice"):
        JobRegistry("python", [*PYTHON_JOBS, Job("expiry", lambda run: None)])


def test_a_new_job_is_one_registration_and_runs_after_the_others(events: Table) -> None:
    """A job added to the registry runs in registry order, sees the results of the jobs
    before it, and its result is reported under its name."""
    seen: list[tuple[str, ...]] = []

    def count_snapshots(run: JobRun[Any]) -> dict[str, int]:
        seen.append(tuple(run.done))
        return {"snapshots": len(run.table.metadata.snapshots)}

    registry = PYTHON_JOBS.with_job(Job("count_snapshots", count_snapshots))
    result = run_maintenance(events, MaintenanceOptions(lease=False), jobs=registry)
    assert result.ok
    assert seen == [("compaction", "manifests", "expiry", "orphans")]
    events.refresh()
    assert dict(result.other_jobs) == {
        "count_snapshots": {"snapshots": len(events.metadata.snapshots)}
    }
    assert result.to_dict()["count_snapshots"] == {"snapshots": len(events.metadata.snapshots)}
    assert result.compaction is not None and result.orphans is not None


def test_jobs_run_in_the_order_the_options_name_them(events: Table) -> None:
    order: list[str] = []

    def recorder(name: str) -> Job[Any]:
        return Job(name, lambda run: order.append(name))

    registry = JobRegistry("python", [recorder(n) for n in JOBS])
    run_maintenance(events, MaintenanceOptions(jobs=("orphans", "compaction")), jobs=registry)
    assert order == ["orphans", "compaction"]
    order.clear()
    run_maintenance(events, MaintenanceOptions(), jobs=registry)
    assert order == list(JOBS)
