"""Compaction output files, written by :func:`lakehouse.datafiles.write_hour_file` (as the
writers' files are).

Compaction outputs are named ``compacted-<uuid>-<n>.parquet``. The name is how planning
tells them from writer files after the snapshot that added them has expired (writers
mark their sorted files with the sort order id too, so that id alone cannot tell).
"""

from __future__ import annotations

import posixpath

from lakehouse.datafiles import parquet_options, write_hour_file

OUTPUT_PREFIX = "compacted-"


def is_compaction_output(path: str) -> bool:
    return posixpath.basename(path).startswith(OUTPUT_PREFIX)


__all__ = ["OUTPUT_PREFIX", "is_compaction_output", "parquet_options", "write_hour_file"]
