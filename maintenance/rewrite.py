"""Rewrite one group: read its files, deduplicate by ``event_id`` (earliest ``server_ts``
wins), sort by ``(client_ts, event_id)``, write files near the on-disk target size.

Nothing is committed here (see :mod:`maintenance.replace`). Memory is bounded by the
group: its rows, plus the key columns of the hour's other groups when an hour is split.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa
from pyiceberg.io import FileIO
from pyiceberg.manifest import DataFile
from pyiceberg.table.metadata import TableMetadata

from lakehouse.schema import SORT_COLUMNS
from maintenance.checks import KEY_COLUMN, read_frame
from maintenance.inventory import DataFileInfo
from maintenance.parquet import OUTPUT_PREFIX, write_hour_file
from maintenance.paths import delete_all, io_delete
from maintenance.plan import RewriteGroup

log = logging.getLogger(__name__)

_FILE = "__lakehouse_file"
_POS = "__lakehouse_pos"
_ROW = "__lakehouse_row"


@dataclass(frozen=True)
class RewrittenGroup:
    """The uncommitted output of a group rewrite."""

    data_files: tuple[DataFile, ...]
    records_in: int
    records_out: int
    bytes_in: int
    bytes_out: int

    @property
    def duplicates_removed(self) -> int:
        return self.records_in - self.records_out


def rewrite_group(
    metadata: TableMetadata,
    io: FileIO,
    group: RewriteGroup,
    *,
    target_file_size: int,
    deduplicate: bool = True,
) -> RewrittenGroup:
    """Write the group's rows, deduplicated and sorted, into new data files."""
    # Every file of the hour gets a rank (by path) so all groups of a split hour agree
    # on which copy of a duplicated event_id survives.
    everyone = sorted([*group.files, *group.siblings], key=lambda f: f.path)
    rank = {f.path: i for i, f in enumerate(everyone)}
    frame, counts = read_frame(metadata, io, group.files)
    records_in = frame.height
    keep = None
    if deduplicate:
        ranks = [rank[f.path] for f in group.files]
        keep = _survivors(frame, ranks, counts, metadata, io, group.siblings, rank)
    rows = sort_events(frame, keep).to_arrow(compat_level=pl.CompatLevel.oldest())
    bytes_in = group.bytes
    written: list[DataFile] = []
    try:
        _write_sized(
            metadata,
            io,
            rows,
            bytes_in,
            records_in,
            target_file_size,
            hour=group.hour,
            into=written,
        )
    except BaseException:
        delete_all([f.file_path for f in written], io_delete(io))
        raise
    return RewrittenGroup(
        data_files=tuple(written),
        records_in=records_in,
        records_out=rows.num_rows,
        bytes_in=bytes_in,
        bytes_out=sum(int(f.file_size_in_bytes) for f in written),
    )


def _tag(keys: pl.DataFrame, ranks: list[int], counts: list[int]) -> pl.DataFrame:
    """Add each row's file rank and position in its file."""
    starts = np.repeat(np.cumsum([0, *counts[:-1]]), counts) if counts else np.array([], np.int64)
    pos = np.arange(keys.height, dtype=np.int64) - starts
    return keys.with_columns(
        pl.Series(_FILE, np.repeat(np.array(ranks, np.int32), counts), pl.Int32),
        pl.Series(_POS, pos, pl.Int64),
    )


def _survivors(
    frame: pl.DataFrame,
    ranks: list[int],
    counts: list[int],
    metadata: TableMetadata,
    io: FileIO,
    siblings: Sequence[DataFileInfo],
    rank: dict[str, int],
) -> np.ndarray | None:
    """Which rows of ``frame`` to keep (None: all): not those whose ``event_id`` an
    earlier copy in the hour holds. Of the copies (here and in the hour's other groups,
    ``siblings``) the first by ``(server_ts, file rank, position in the file)`` stays."""
    columns = [KEY_COLUMN, "server_ts"]
    candidates = _tag(frame.select(columns), ranks, counts).with_row_index(_ROW)
    if siblings:
        keys, sibling_counts = read_frame(metadata, io, siblings, columns)
        other = _tag(keys, [rank[f.path] for f in siblings], sibling_counts)
        other = other.with_columns(pl.lit(None, pl.UInt32).alias(_ROW))  # not ours to drop
        candidates = pl.concat([candidates, other.select(candidates.columns)])
    # Only the rows whose key repeats are ranked (few, in practice).
    repeated = candidates.filter(pl.col(KEY_COLUMN).is_duplicated())
    if not repeated.height:
        return None
    losers = (
        repeated.sort([KEY_COLUMN, "server_ts", _FILE, _POS])
        .filter(~pl.col(KEY_COLUMN).is_first_distinct())[_ROW]
        .drop_nulls()
        .to_numpy()
    )
    if not losers.size:
        return None
    keep = np.ones(frame.height, dtype=bool)
    keep[losers] = False
    return keep


def sort_events(frame: pl.DataFrame, keep: np.ndarray | None = None) -> pl.DataFrame:
    """The rows of ``frame`` (those ``keep`` marks, when given) in ``(client_ts,
    event_id)`` order, gathered once. The order is found on the keys alone, by the
    timestamp first (half the time of both keys, which compare text): when no two rows
    share a timestamp that is the order; otherwise both keys are sorted on."""
    first, second = SORT_COLUMNS
    keys = frame.select(first, second).with_row_index(_ROW)
    if keep is not None:
        keys = keys.filter(pl.Series(keep))
    order = keys.sort(first)
    micros = order[first].to_physical()
    if micros.null_count() or (micros.diff() == 0).any():
        order = keys.sort([first, second])
    return frame.select(pl.all().gather(order[_ROW]))


def _write_sized(
    metadata: TableMetadata,
    io: FileIO,
    rows: pa.Table,
    bytes_in: int,
    records_in: int,
    target_file_size: int,
    *,
    hour: int,
    into: list[DataFile],
) -> None:
    """Cut ``rows`` into contiguous slices near ``target_file_size`` on disk.

    The first estimate of bytes per row comes from the inputs; after each file the
    estimate is corrected with what the written files really weigh.
    """
    if rows.num_rows == 0:
        return
    write_uuid = uuid.uuid4()
    per_row = bytes_in / max(records_in, 1)
    files = into
    offset = 0
    total = rows.num_rows
    written_bytes = 0
    while offset < total:
        remaining = total - offset
        n_files = max(1, round(remaining * per_row / target_file_size))
        take = remaining if n_files == 1 else math.ceil(remaining / n_files)
        name = f"{OUTPUT_PREFIX}{write_uuid}-{len(files):05d}.parquet"
        data_file = write_hour_file(metadata, io, rows.slice(offset, take), hour=hour, name=name)
        files.append(data_file)
        written_bytes += int(data_file.file_size_in_bytes)
        offset += take
        per_row = written_bytes / offset
    log.debug("wrote %s files, %s rows, %s bytes", len(files), total, written_bytes)
