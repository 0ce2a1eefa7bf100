"""Typed results of every maintenance operation: frozen dataclasses of snake_case counts.

``to_dict()`` gives plain JSON-ready values (datetimes as ISO-8601 text). When an
operation ran with ``dry_run``, its counts say what it *would* have done.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    return value


class _ToDict:
    def to_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))  # type: ignore[call-overload,no-any-return]


@dataclass(frozen=True)
class GroupFailure(_ToDict):
    """A rewrite group that failed (or was skipped): nothing of it was committed."""

    group_id: str
    hour: str
    error_type: str
    message: str
    retryable: bool


@dataclass(frozen=True)
class CompactionResult(_ToDict):
    groups_planned: int = 0
    groups_committed: int = 0
    groups_skipped: int = (
        0  # lost to a concurrent change, even after re-planning: safe, retried next run
    )
    groups_failed: int = 0
    files_rewritten: int = 0
    files_added: int = 0
    bytes_rewritten: int = 0
    bytes_added: int = 0
    records_rewritten: int = 0
    records_added: int = 0
    duplicates_removed: int = 0
    commits: int = 0  # snapshots committed (each holds one batch of groups)
    replace_commits: int = 0
    overwrite_commits: int = 0
    stopped: bool = False  # a stop was requested; groups not started were left for the next run
    dry_run: bool = False
    skipped: tuple[GroupFailure, ...] = ()
    failures: tuple[GroupFailure, ...] = ()


@dataclass(frozen=True)
class ManifestResult(_ToDict):
    manifests_before: int = 0
    manifests_after: int = 0
    manifests_rewritten: int = 0
    rewritten: bool = False
    dry_run: bool = False


@dataclass(frozen=True)
class ExpiryResult(_ToDict):
    snapshots_expired: int = 0
    data_files_deleted: int = 0
    manifests_deleted: int = 0
    manifest_lists_deleted: int = 0
    metadata_files_deleted: int = 0
    files_deleted: int = 0
    delete_failures: int = 0
    dry_run: bool = False
    expired_snapshot_ids: tuple[int, ...] = ()
    deleted_paths: tuple[str, ...] = ()


@dataclass(frozen=True)
class OrphanResult(_ToDict):
    files_scanned: int = 0
    orphans_found: int = 0  # unreferenced and older than the window
    orphans_deleted: int = 0
    orphans_too_recent: int = 0  # unreferenced but inside the window (maybe in-flight writes)
    bytes_found: int = 0
    delete_failures: int = 0
    dry_run: bool = False
    orphan_paths: tuple[str, ...] = ()


@dataclass(frozen=True)
class JobFailure(_ToDict):
    """A whole job (compaction, manifests, expiry, orphans) that raised."""

    job: str
    error_type: str
    message: str


RUN_RESULT_JOBS = ("compaction", "manifests", "expiry", "orphans")  # jobs with a field


@dataclass(frozen=True)
class RunResult(_ToDict):
    """One ``maintain run``: every job once, with what each did."""

    table: str
    run_id: str
    started_at: datetime
    finished_at: datetime
    dry_run: bool
    compaction: CompactionResult | None = None
    manifests: ManifestResult | None = None
    expiry: ExpiryResult | None = None
    orphans: OrphanResult | None = None
    other_jobs: tuple[tuple[str, Any], ...] = ()  # (job, result) of jobs without a field
    job_failures: tuple[JobFailure, ...] = ()
    skipped_reason: str | None = None  # e.g. the lease is held by another scheduler

    @property
    def failures(self) -> tuple[GroupFailure, ...]:
        return self.compaction.failures if self.compaction else ()

    @property
    def ok(self) -> bool:
        return not self.failures and not self.job_failures

    def counts(self) -> dict[str, int]:
        c = self.compaction or CompactionResult()
        e = self.expiry or ExpiryResult()
        o = self.orphans or OrphanResult()
        return {
            "files_rewritten": c.files_rewritten,
            "files_added": c.files_added,
            "bytes_rewritten": c.bytes_rewritten,
            "duplicates_removed": c.duplicates_removed,
            "groups_committed": c.groups_committed,
            "groups_skipped": c.groups_skipped,
            "groups_failed": c.groups_failed,
            "snapshots_expired": e.snapshots_expired,
            "files_deleted": e.files_deleted,
            "orphans_deleted": o.orphans_deleted,
        }

    def to_dict(self) -> dict[str, Any]:
        body = super().to_dict()
        jobs = {k: body.pop(k) for k in RUN_RESULT_JOBS}
        body.pop("other_jobs")
        for name, result in self.other_jobs:
            jobs[name] = result.to_dict() if hasattr(result, "to_dict") else _plain(result)
        return {
            **body,
            "ok": self.ok,
            **self.counts(),
            "failures": [f.to_dict() for f in self.failures],
            **jobs,
        }
