"""Table maintenance for the events table: late-aware compaction, manifest rewriting,
snapshot expiry with file cleanup, orphan removal, a per-table lease, and the lag that
``lakehouse health`` reports.

Every operation plans before it acts (planning has no side effects), returns a frozen
result of snake_case counts with ``to_dict()``, and defaults to the safe side: dry runs,
retention windows, and never deleting a file a retained snapshot can read.

    plan = plan_compaction(table, CompactionOptions.from_settings(settings))
    result = compact(table, plan=plan)                    # at most 10 commits
    run = run_maintenance(table, MaintenanceOptions())    # all jobs, under the lease
    lag = maintenance_lag(table, settings)                # for `lakehouse health`

An executor other than ours (Trino/Athena ``ALTER TABLE ... EXECUTE optimize``) can carry
out the same :class:`CompactionPlan`: each :class:`RewriteGroup` names its hour range
(:meth:`RewriteGroup.sql_predicate`).
"""

from maintenance.check import CheckResult, Problem, check_table, last_good_snapshot
from maintenance.compact import compact
from maintenance.errors import (
    LeaseHeldError,
    LeaseLostError,
    LeaseUnsupportedError,
    MaintenanceError,
    RewriteConflictError,
)
from maintenance.expire import expire_snapshots, snapshots_to_expire
from maintenance.health import MaintenanceLag, maintenance_lag
from maintenance.inventory import (
    KIND_COMPACTION,
    KIND_MANIFESTS,
    SUMMARY_COMPACTED_HOURS,
    SUMMARY_DUPLICATES_REMOVED,
    Inventory,
    take_inventory,
)
from maintenance.jobs import JOBS, Job, JobRegistry, JobRun, MaintenanceOptions
from maintenance.lease import LEASE_PROPERTY, Lease, TableLease, read_lease
from maintenance.manifests import rewrite_manifests
from maintenance.orphans import remove_orphan_files
from maintenance.paths import DeleteFn
from maintenance.plan import CompactionOptions, CompactionPlan, RewriteGroup, plan_compaction
from maintenance.progress import LogReporter, NullReporter, ProgressReporter, RichReporter
from maintenance.results import (
    CompactionResult,
    ExpiryResult,
    GroupFailure,
    JobFailure,
    ManifestResult,
    OrphanResult,
    RunResult,
)
from maintenance.rollback import RollbackResult, repair_to, rollback_to
from maintenance.runner import LAST_RUN_PROPERTY, run_maintenance

__all__ = [
    "JOBS",
    "KIND_COMPACTION",
    "KIND_MANIFESTS",
    "LAST_RUN_PROPERTY",
    "LEASE_PROPERTY",
    "SUMMARY_COMPACTED_HOURS",
    "SUMMARY_DUPLICATES_REMOVED",
    "CheckResult",
    "CompactionOptions",
    "CompactionPlan",
    "CompactionResult",
    "DeleteFn",
    "ExpiryResult",
    "GroupFailure",
    "Inventory",
    "Job",
    "JobFailure",
    "JobRegistry",
    "JobRun",
    "Lease",
    "LeaseHeldError",
    "LeaseLostError",
    "LeaseUnsupportedError",
    "LogReporter",
    "MaintenanceError",
    "MaintenanceLag",
    "MaintenanceOptions",
    "ManifestResult",
    "NullReporter",
    "OrphanResult",
    "Problem",
    "ProgressReporter",
    "RewriteConflictError",
    "RewriteGroup",
    "RichReporter",
    "RollbackResult",
    "RunResult",
    "TableLease",
    "check_table",
    "compact",
    "expire_snapshots",
    "last_good_snapshot",
    "maintenance_lag",
    "plan_compaction",
    "read_lease",
    "remove_orphan_files",
    "repair_to",
    "rewrite_manifests",
    "rollback_to",
    "run_maintenance",
    "snapshots_to_expire",
    "take_inventory",
]
