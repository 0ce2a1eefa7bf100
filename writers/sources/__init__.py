"""Sources: where events come from, as batches of payloads at positions.

:mod:`writers.sources.base` defines the interface; :class:`LandingFiles` is the landing
zone of (gzipped) NDJSON files. The ingest driver (:mod:`writers.ingest`) and the ledger
(:mod:`writers.ledger`) do the exactly-once bookkeeping for every source.
"""

from writers.sources.base import Batch, Payload, Plan, Position, Source
from writers.sources.landing import LandingFiles

__all__ = ["Batch", "LandingFiles", "Payload", "Plan", "Position", "Source"]
