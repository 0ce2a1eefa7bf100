"""Snapshot-summary keys and kinds: every key this project writes, defined once.

Writers, maintenance, readers and health read and write snapshot summaries through these
names only. ``lakehouse.kind`` is also the table property that says which of the tables
a table is (``events``, ``rejected``, ``ingested``).
"""

from __future__ import annotations

# -- keys -------------------------------------------------------------------------------
KIND = "lakehouse.kind"  # one of the kinds below
BATCH_KEY = "lakehouse.batch-key"  # the writer's batch (idempotency) key
IDEMPOTENCY_KEY = "lakehouse.idempotency-key"  # batch key + "/on-time" or "/late"
LATE = "lakehouse.late"  # "true" on a late snapshot
LATE_HOURS = "lakehouse.late-hours"  # comma-separated hour labels (lakehouse.hours)
RECORDS = "lakehouse.records"
WRITER = "lakehouse.writer"  # host:pid:id of the writer that committed
COMPACTED_HOURS = "lakehouse.compacted-hours"  # comma-separated hour labels a compaction rewrote
DUPLICATES_REMOVED = "lakehouse.duplicates-removed"  # rows dropped as duplicates, in all
DUPLICATE_HOURS = "lakehouse.duplicate-hours"  # "<hour label>:<rows dropped>,..." (overwrite only)
COMPACTION_GROUP = "lakehouse.compaction-group"  # comma-separated group ids ("<hour>#<part>")
MAINTENANCE_RUN = "lakehouse.maintenance-run"

# -- snapshot kinds (values of ``lakehouse.kind`` in a snapshot summary) ----------------
KIND_ON_TIME = "on-time"  # events whose hour was open when received
KIND_LATE = "late"  # events whose hour had closed (see lakehouse.hours)
KIND_REJECTS = "rejects"  # rows appended to <table>_rejected
KIND_INGESTED = "ingested"  # rows appended to <table>_ingested (the ingest log)
KIND_COMPACTION = "compaction"  # maintenance rewrite of data files
KIND_MANIFESTS = "manifest-rewrite"  # maintenance rewrite of manifests

WRITER_KINDS = frozenset({KIND_ON_TIME, KIND_LATE})
# Snapshots that never change which event ids an hour holds (they only rewrite files,
# dropping duplicate copies at most).
MAINTENANCE_KINDS = frozenset({KIND_COMPACTION, KIND_MANIFESTS})

# -- table kinds (values of the ``lakehouse.kind`` table property) ----------------------
TABLE_EVENTS = "events"
TABLE_REJECTED = "rejected"
TABLE_INGESTED = "ingested"
