"""The ledger: which source positions are committed, recorded once for every source.

It is the ``<table>_ingested`` table (``lakehouse.schema.INGESTED_SCHEMA``), one row per
position: ``source`` holds the position's id (a landing file's URI), ``size`` its bytes,
``records`` the records read from it, ``batch_key`` the idempotency key of the batch that
committed it, ``ingested_at`` when, ``fingerprint`` what the position was when read (a
landing file's S3 ETag or local inode and modification time, and a digest of the last
bytes read) and ``lines`` the newlines read (so a file that grew is read on from its
recorded size, its line numbers continuing). Ledgers made before the last two columns
existed gain them when opened for writing (:meth:`Ledger.evolve`). A batch's rows are appended in one commit under the
batch's key, so a retried or repeated record of the same batch adds nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.expressions import And
from pyiceberg.utils.concurrent import ExecutorFactory

from lakehouse import summary
from lakehouse.expressions import greater_than, is_in, starts_with
from lakehouse.schema import INGESTED_SCHEMA
from writers import commit
from writers.evolution import union
from writers.sources.base import Position, Recorded

KIND = summary.KIND_INGESTED
"""The snapshot kind of the ledger's commits."""

FULL_BOUNDS_PROPERTY = "write.metadata.metrics.column.source"
"""The ledger's metrics mode for ``source`` (``full`` on ledgers this version creates)."""

TRUNCATED_BOUND = 16
"""Characters a truncated string bound keeps (pyiceberg's default, ``truncate(16)``)."""

LOOKUP_CHUNK = 500
"""Ids asked of the ledger per filtered scan (an ``In`` filter of this many values)."""


def batch_key(positions: Sequence[Position]) -> str:
    """The idempotency key of a batch, made from its positions (ids, sizes and, when the
    source gives one, stamps): the same pending positions re-formed into the same batch on
    a re-run get the same key; a file rewritten at the same size gets another."""
    digest = hashlib.blake2b(digest_size=16)
    for p in positions:
        digest.update(f"{p.id}\x00{p.size}\x00".encode())
        if p.stamp is not None:
            digest.update(f"{p.stamp}\x00".encode())
    return "f-" + digest.hexdigest()


class Ledger:
    """Committed positions in ``table`` (the events table's ``_ingested`` companion)."""

    def __init__(self, table: Any) -> None:
        self.table = table
        # data files are immutable: each is read once per ledger (one ingest run or cycle),
        # however many questions (the listing's checkpoint, then the listed ids) read it
        self._read: dict[str, pa.Table | None] = {}
        self._pending: dict[str, Future[pa.Table | None]] = {}  # being read (prefetch)

    def evolve(self) -> list[str]:
        """Give a ledger made by an older version the columns it lacks (``fingerprint``,
        ``lines``), by name, through the commit path; the names added."""
        return union(self.table, INGESTED_SCHEMA)

    def _fresh(self) -> bool:
        """Refresh the table; whether it holds anything."""
        self.table.refresh()
        return self.table.current_snapshot() is not None

    def committed(self) -> set[str]:
        """The ids of every committed position (reads the whole ledger: prefer
        :meth:`committed_among` or :meth:`committed_with_prefix`)."""
        if not self._fresh():
            return set()
        column = self.table.scan(selected_fields=("source",)).to_arrow().column("source")
        return set(column.to_pylist())

    def committed_among(self, ids: Iterable[str]) -> dict[str, int]:
        """Of the given position ids, those committed, each with its committed size (as
        last recorded, should one id have been recorded more than once). A filtered scan: the
        ledger's data files whose ``source`` bounds exclude every asked id are not read."""
        return {k: r.size for k, r in self.recorded_among(ids).items()}

    def recorded_among(self, ids: Iterable[str]) -> dict[str, Recorded]:
        """Like :meth:`committed_among`, with each position's fingerprint and lines."""
        wanted = sorted(set(ids))
        if not wanted or not self._fresh():
            return {}
        out: dict[str, Recorded] = {}
        for k in range(0, len(wanted), LOOKUP_CHUNK):
            chunk = wanted[k : k + LOOKUP_CHUNK]
            self._collect(is_in("source", chunk), out, _among(chunk))
        return out

    def committed_with_prefix(self, prefix: str) -> list[tuple[str, int]]:
        """(id, committed size) of every committed position whose id starts with
        ``prefix``, sorted by id."""
        if not self._fresh():
            return []
        out: dict[str, Recorded] = {}
        self._collect(starts_with("source", prefix), out, lambda c: pc.starts_with(c, prefix))
        return sorted((k, r.size) for k, r in out.items())

    def last_with_prefix(self, prefix: str) -> str | None:
        """The greatest committed id that starts with ``prefix``, reading only the ledger
        file whose ``source`` upper bound is greatest (where bounds are recorded in full;
        otherwise every matching file)."""
        if not self._fresh():
            return None
        tasks = list(self.table.scan(row_filter=starts_with("source", prefix)).plan_files())
        if not tasks:
            return None
        field_id = self.table.schema().find_field("source").field_id
        # upper bounds are at least each file's greatest id (exact when recorded in full,
        # rounded up when truncated): read files from the highest bound down, stopping
        # once no other file's bound is above the greatest id found
        ordered = sorted(
            tasks, key=lambda t: _upper(t.file.upper_bounds, field_id) or "\U0010ffff", reverse=True
        )
        # recorded in full (the table's metrics mode, and longer than a truncated bound):
        # a file's upper bound is its greatest id, and needs no read
        full = self.table.properties.get(FULL_BOUNDS_PROPERTY) == "full"
        best: str | None = None
        for task in ordered:
            bound = _upper(task.file.upper_bounds, field_id)
            if best is not None and bound is not None and bound <= best:
                break
            if (
                full
                and bound is not None
                and len(bound) > TRUNCATED_BOUND
                and bound.startswith(prefix)
                and not task.delete_files
            ):
                best = bound if best is None or bound > best else best
                continue
            ids = _with_prefix(self._sources(task.file.file_path), prefix)
            if ids and (best is None or max(ids) > best):
                best = max(ids)
        return best

    def prefetch(self, prefix: str, after: str) -> int:
        """Start reading, in the background, the ledger files that may hold ids starting
        with ``prefix`` and greater than ``after`` (what a listing from that checkpoint
        will ask about), while the caller lists; the number of files started."""
        if not self._fresh():
            return 0
        row_filter = And(starts_with("source", prefix), greater_than("source", after))
        pool = ExecutorFactory.get_or_create()
        started = 0
        for task in self.table.scan(row_filter=row_filter).plan_files():
            location = task.file.file_path
            if task.delete_files or location in self._read or location in self._pending:
                continue
            self._pending[location] = pool.submit(self._fetch, location)
            started += 1
        return started

    def _file(self, location: str) -> pa.Table | None:
        """The columns :meth:`_collect` reads of one ledger data file, read once; None for
        a file that lacks some (written before ``fingerprint`` and ``lines`` existed)."""
        return self._files([location])[0]

    def _files(self, locations: Sequence[str]) -> list[pa.Table | None]:
        """:meth:`_file` of each location, those not yet read fetched side by side (each
        is a HEAD and a GET on S3), those being prefetched awaited."""
        missing = [x for x in dict.fromkeys(locations) if x not in self._read]
        fetch = [x for x in missing if x not in self._pending]
        if len(fetch) > 1:
            pool = ExecutorFactory.get_or_create()
            self._read.update(zip(fetch, pool.map(self._fetch, fetch), strict=True))
        elif fetch:
            self._read[fetch[0]] = self._fetch(fetch[0])
        for location in missing:
            if location in self._pending:
                self._read[location] = self._pending.pop(location).result()
        return [self._read[x] for x in locations]

    def _fetch(self, location: str) -> pa.Table | None:
        import pyarrow.parquet as pq

        with self.table.io.new_input(location).open() as stream:
            parquet = pq.ParquetFile(stream)
            whole = set(_COLUMNS) <= set(parquet.schema_arrow.names)
            return parquet.read(columns=list(_COLUMNS)) if whole else None

    def _sources(self, location: str) -> pa.ChunkedArray:
        """The ``source`` column of one ledger data file (from :meth:`_file` when whole)."""
        whole = self._file(location)
        if whole is not None:
            return whole.column("source")
        import pyarrow.parquet as pq

        with self.table.io.new_input(location).open() as stream:
            return pq.read_table(stream, columns=["source"]).column("source")

    def _rows(self, row_filter: Any, mask: Callable[[pa.ChunkedArray], Any]) -> pa.Table:
        """The rows ``row_filter`` keeps: the files whose statistics may hold one are
        planned by pyiceberg, then each is read once (:meth:`_file`) and ``mask`` (the
        same condition on the ``source`` column) picks the rows. Ledgers with delete files
        or files written before the newest columns are read by pyiceberg."""
        scan = self.table.scan(row_filter=row_filter)
        tasks = list(scan.plan_files())
        have = {f.name for f in self.table.schema().fields}
        direct = set(_COLUMNS) <= have and not any(t.delete_files for t in tasks)
        files = self._files([t.file.file_path for t in tasks]) if direct else []
        parts = [f.filter(mask(f.column("source"))) for f in files if f is not None]
        if not direct or len(parts) < len(files):
            return self.table.scan(  # pyiceberg reads what a file lacks as nulls
                row_filter=row_filter,
                selected_fields=tuple(c for c in _COLUMNS if c in have),
            ).to_arrow()
        return pa.concat_tables(parts) if parts else INGESTED_SCHEMA.as_arrow().empty_table()

    def _collect(
        self,
        row_filter: Any,
        out: dict[str, Recorded],
        mask: Callable[[pa.ChunkedArray], Any],
    ) -> None:
        """Each matching id as last recorded (a file read again after it changed is
        recorded again, at its new size)."""
        rows = self._rows(row_filter, mask)
        extra = tuple(c for c in ("fingerprint", "lines") if c in rows.column_names)
        n = rows.num_rows
        prints = rows.column("fingerprint").to_pylist() if "fingerprint" in extra else [None] * n
        counts = rows.column("lines").to_pylist() if "lines" in extra else [None] * n
        latest: dict[str, tuple[Any, int, Recorded]] = {}
        for source, size, at, key, fingerprint, lines in zip(
            rows.column("source").to_pylist(),
            rows.column("size").to_pylist(),
            rows.column("ingested_at").to_pylist(),
            rows.column("batch_key").to_pylist(),
            prints,
            counts,
            strict=True,
        ):
            if source not in latest or (at, size) > latest[source][:2]:
                latest[source] = (at, size, Recorded(size, fingerprint, lines, key))
        out.update({source: r for source, (_, _, r) in latest.items()})

    def record(
        self,
        positions: Sequence[Position],
        records: Sequence[int],
        *,
        key: str,
        at: datetime | None = None,
        fingerprints: Sequence[str | None] | None = None,
        lines: Sequence[int | None] | None = None,
    ) -> None:
        """Record the batch's positions (with the records read from each, and optionally
        their fingerprints and newlines read) as committed, once: a batch whose key is
        already in the ledger adds nothing."""
        if len(records) != len(positions):
            raise ValueError(f"{len(records)} record counts for {len(positions)} positions")
        n = len(positions)
        fingerprints = list(fingerprints) if fingerprints is not None else [None] * n
        lines = list(lines) if lines is not None else [None] * n
        if len(fingerprints) != n or len(lines) != n:
            raise ValueError(f"fingerprints or lines are not one per position ({n})")
        self.evolve()
        schema = INGESTED_SCHEMA.as_arrow()
        now = at or datetime.now(UTC)
        rows = pa.table(
            {
                "source": pa.array([p.id for p in positions], schema.field("source").type),
                "size": pa.array([p.size for p in positions], pa.int64()),
                "records": pa.array(list(records), pa.int64()),
                "batch_key": pa.array([key] * n, schema.field("batch_key").type),
                "ingested_at": pa.array([now] * n, schema.field("ingested_at").type),
                "fingerprint": pa.array(fingerprints, schema.field("fingerprint").type),
                "lines": pa.array(lines, pa.int64()),
            },
            schema=schema,
        )
        commit.append_with_key(self.table, rows, key=key, kind=KIND)


def _upper(bounds: dict[int, bytes] | None, field_id: int) -> str | None:
    raw = (bounds or {}).get(field_id)
    return raw.decode("utf-8", errors="replace") if raw is not None else None


_COLUMNS = ("source", "size", "ingested_at", "batch_key", "fingerprint", "lines")


def _among(ids: Sequence[str]) -> Callable[[pa.ChunkedArray], Any]:
    """A mask of the ``source`` values among ``ids``."""
    value_set = pa.array(ids, pa.string())

    def mask(column: pa.ChunkedArray) -> Any:
        return pc.is_in(column, value_set=value_set)

    return mask


def _with_prefix(column: pa.ChunkedArray, prefix: str) -> list[str]:
    """The ``source`` values under ``prefix`` in one ledger data file's column."""
    return [str(v) for v in pc.filter(column, pc.starts_with(column, prefix)).to_pylist()]
