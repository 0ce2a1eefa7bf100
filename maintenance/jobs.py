"""Maintenance jobs as a registry: each job a small object (its name, the function that
runs it, the ``RunResult`` field its result goes to), and each runner a registry of the
jobs it can carry out.

:data:`PYTHON_JOBS` are this process's jobs, in run order: compaction, manifests, expiry,
orphans. The Trino and Athena runners (:mod:`lakehouse.engines`) hold registries of the
same names carried out by SQL. :func:`maintenance.runner.run_jobs` runs the jobs of a
registry; a job name a registry does not know is a :class:`~lakehouse.errors.UsageError`,
raised before anything runs.

A new job is a function ``run(job_run) -> result`` (in its own module) and one
:class:`Job` in :data:`PYTHON_JOBS` (and in an engine's registry when that engine can
carry it out). Its options are read from :class:`MaintenanceOptions`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from lakehouse.errors import UsageError
from maintenance.expire import DEFAULT_RETENTION
from maintenance.lease import DEFAULT_LEASE_TTL
from maintenance.manifests import DEFAULT_MAX_MANIFESTS
from maintenance.orphans import DEFAULT_ORPHAN_RETENTION, check_orphan_retention
from maintenance.plan import CompactionOptions

if TYPE_CHECKING:
    from pyiceberg.table import Table

    from maintenance.paths import DeleteFn
    from maintenance.progress import ProgressReporter

S = TypeVar("S")


@dataclass(frozen=True)
class JobRun(Generic[S]):
    """What a job gets when it runs: the table (refreshed), the run's options, its id,
    the stop check (graceful shutdown or a lost lease), the results of the jobs done so
    far in this run, and ``state``, whatever the runner's engine needs (a connection, a
    plan, ...)."""

    table: Table
    options: MaintenanceOptions
    run_id: str
    stop: Callable[[], bool]
    done: Mapping[str, Any]
    reporter: ProgressReporter
    now: datetime | None
    state: S


@dataclass(frozen=True)
class Job(Generic[S]):
    """One maintenance job. ``run`` returns the job's result, or None when the runner has
    nothing to do for it; the result goes to the ``RunResult`` field ``result`` (default:
    the job's name)."""

    name: str
    run: Callable[[JobRun[S]], Any]
    result: str | None = None

    @property
    def result_field(self) -> str:
        return self.result or self.name


class JobRegistry(Generic[S]):
    """Jobs by name, in run order; an unknown name is a :class:`UsageError`."""

    def __init__(self, engine: str, jobs: Iterable[Job[S]]) -> None:
        self.engine = engine
        self._jobs: dict[str, Job[S]] = {}
        for job in jobs:
            if job.name in self._jobs:
                raise ValueError(f"job {job.name!r} registered twice for {engine}")
            self._jobs[job.name] = job

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._jobs)

    def __contains__(self, name: object) -> bool:
        return name in self._jobs

    def __iter__(self) -> Iterator[Job[S]]:
        return iter(self._jobs.values())

    def get(self, name: str) -> Job[S]:
        job = self._jobs.get(name)
        if job is None:
            raise UsageError(
                f"unknown maintenance job {name!r} for the {self.engine} engine; "
                f"choose from {', '.join(self._jobs)}"
            )
        return job

    def check(self, names: Iterable[str]) -> None:
        """Raise :class:`UsageError` for the first name this registry does not know."""
        for name in names:
            self.get(name)

    def with_job(self, job: Job[S]) -> JobRegistry[S]:
        """A copy with ``job`` added at the end (or replacing the job of its name)."""
        jobs = {**self._jobs, job.name: job}
        return JobRegistry(self.engine, jobs.values())


@dataclass(frozen=True)
class PythonState:
    """What the in-process jobs need beyond the run: the delete function used by expiry
    and orphan removal (None: the table's FileIO)."""

    delete: DeleteFn | None = None


def _compaction(run: JobRun[PythonState]) -> Any:
    from maintenance.compact import compact

    return compact(
        run.table,
        run.options.compaction,
        dry_run=run.options.dry_run,
        reporter=run.reporter,
        should_stop=run.stop,
        run_id=run.run_id,
        now=run.now,
    )


def _manifests(run: JobRun[PythonState]) -> Any:
    from maintenance.manifests import rewrite_manifests

    return rewrite_manifests(
        run.table, max_manifests=run.options.max_manifests, dry_run=run.options.dry_run
    )


def _expiry(run: JobRun[PythonState]) -> Any:
    from maintenance.expire import expire_snapshots

    return expire_snapshots(
        run.table,
        retention=run.options.snapshot_retention,
        retain_last=run.options.retain_last,
        now=run.now,
        dry_run=run.options.dry_run,
        delete=run.state.delete,
    )


def _orphans(run: JobRun[PythonState]) -> Any:
    from maintenance.orphans import remove_orphan_files

    return remove_orphan_files(
        run.table,
        older_than=run.options.orphan_retention,
        now=run.now,
        dry_run=run.options.dry_run,
        delete=run.state.delete,
        force=run.options.force,
    )


PYTHON_JOBS: JobRegistry[PythonState] = JobRegistry(
    "python",
    [
        Job("compaction", _compaction),
        Job("manifests", _manifests),
        Job("expiry", _expiry),
        Job("orphans", _orphans),
    ],
)
JOBS: tuple[str, ...] = PYTHON_JOBS.names
"""Every job name, in run order: what ``MaintenanceOptions.jobs`` may name."""


@dataclass(frozen=True)
class MaintenanceOptions:
    """Everything one run needs to know. Durations are ``timedelta``s."""

    compaction: CompactionOptions = field(default_factory=CompactionOptions)
    snapshot_retention: timedelta = DEFAULT_RETENTION
    retain_last: int = 1
    orphan_retention: timedelta = DEFAULT_ORPHAN_RETENTION
    max_manifests: int = DEFAULT_MAX_MANIFESTS
    dry_run: bool = False
    lease: bool = True
    lease_ttl: timedelta = DEFAULT_LEASE_TTL
    jobs: tuple[str, ...] | None = None  # None: every job of the runner, in its order
    force: bool = False  # accept an orphan retention under 24 hours

    def __post_init__(self) -> None:
        unknown = set(self.jobs or ()) - set(JOBS)
        if unknown:
            raise UsageError(
                f"unknown maintenance jobs {sorted(unknown)}; choose from {', '.join(JOBS)}"
            )
        if self.retain_last < 1:
            raise UsageError("--retain-last must be at least 1")
        if min(self.snapshot_retention, self.orphan_retention) < timedelta(0):
            raise UsageError("retention windows cannot be negative")
        if (self.jobs is None or "orphans" in self.jobs) and not self.dry_run:
            check_orphan_retention(self.orphan_retention, force=self.force)
