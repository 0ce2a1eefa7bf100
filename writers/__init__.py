"""Writers: events in, an ordered, deduplicated Iceberg table out.

* :class:`EventWriter` takes dicts, Arrow and Polars data, validates and normalises it,
  drops duplicates (within the batch and against the hours it touches), sorts it by
  ``(client_ts, event_id)``, commits on-time and late rows as separate snapshots with an
  idempotency key, and keeps rejected records aside with a reason.
* :func:`ingest` reads a landing zone of (gzipped) NDJSON files exactly once per file;
  :func:`ingest_source` does the same for any source (:mod:`writers.sources`), with the
  committed positions kept in one ledger (:mod:`writers.ledger`).
"""

from writers.ingest import ingest, ingest_source
from writers.results import IngestResult, WriteResult
from writers.writer import EventWriter

__all__ = ["EventWriter", "IngestResult", "WriteResult", "ingest", "ingest_source"]
