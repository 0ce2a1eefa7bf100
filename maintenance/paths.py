"""File locations: one canonical form for comparing paths, listing under a location,
and the injectable delete function destructive jobs use."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import unquote, urlparse

from pyiceberg.io import FileIO

log = logging.getLogger(__name__)

DeleteFn = Callable[[str], None]
"""Deletes one file given its location (URI). Raising marks that file as not deleted."""


def canonical(location: str) -> str:
    """The comparable form of a file location: no scheme, no percent-encoding.

    ``file:///w/t/a.parquet``, ``/w/t/a.parquet`` -> ``/w/t/a.parquet``;
    ``s3://bucket/t/a.parquet``, ``s3a://bucket/t/a.parquet`` -> ``bucket/t/a.parquet``.
    """
    parsed = urlparse(location)
    if not parsed.scheme or len(parsed.scheme) == 1:  # a bare path (or a Windows drive)
        return location
    if parsed.scheme == "file":
        return unquote(parsed.path)
    return f"{parsed.netloc}{parsed.path}"


def io_delete(io: FileIO) -> DeleteFn:
    """The default delete: through the table's FileIO (local, S3, GCS, ...)."""

    def delete(location: str) -> None:
        io.delete(location)

    return delete


@dataclass(frozen=True)
class ListedFile:
    location: str  # a URI FileIO accepts
    key: str  # canonical(location)
    size: int
    modified: datetime | None


def list_files(location: str) -> Iterator[ListedFile]:
    """Every file under ``location`` (recursive), through a pyarrow filesystem, which
    speaks both local paths and object stores."""
    from pyarrow import fs as pafs

    filesystem, root = pafs.FileSystem.from_uri(location)
    parsed = urlparse(location)
    scheme = parsed.scheme or "file"
    selector = pafs.FileSelector(root, recursive=True, allow_not_found=True)
    for info in filesystem.get_file_info(selector):
        if info.type != pafs.FileType.File:
            continue
        uri = f"file://{info.path}" if scheme == "file" else f"{scheme}://{info.path}"
        mtime = info.mtime
        if mtime is not None and mtime.tzinfo is None:
            mtime = mtime.replace(tzinfo=UTC)
        yield ListedFile(location=uri, key=canonical(uri), size=int(info.size or 0), modified=mtime)


def delete_all(locations: list[str], delete: DeleteFn) -> tuple[int, int]:
    """Delete each location; returns (deleted, failed). A file already gone counts as
    deleted; other failures are logged and counted, never raised."""
    deleted = failed = 0
    for location in locations:
        try:
            delete(location)
            deleted += 1
        except FileNotFoundError:
            deleted += 1
        except Exception as exc:  # one bad file must not stop the cleanup
            failed += 1
            log.warning("could not delete %s: %s: %s", location, type(exc).__name__, exc)
    return deleted, failed
