"""File locations: one canonical form for comparing paths, listing under a location,
and the injectable delete function destructive jobs use."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlparse

from pyiceberg.io import FileIO

from lakehouse.errors import ConfigError

log = logging.getLogger(__name__)

DeleteFn = Callable[[str], None]
"""Deletes one file given its location (URI). Raising marks that file as not deleted."""


def canonical(location: str) -> str:
    """The comparable form of a file location: no scheme, the path as pyiceberg's FileIO
    uses it (so the real path on disk for local files).

    ``file:///w/t/a.parquet``, ``/w/t/a.parquet`` -> ``/w/t/a.parquet``;
    ``s3://bucket/t/a.parquet``, ``s3a://bucket/t/a.parquet`` -> ``bucket/t/a.parquet``.
    Nothing is percent-decoded: pyiceberg writes ``file:///my%20lake/x`` to the folder
    literally named ``my%20lake``, and a bare path (``/my lake #1/x``, what the embedded
    catalog uses for a home whose path is not a plain URI) is taken as it is.
    """
    parsed = urlparse(location)
    if not parsed.scheme or len(parsed.scheme) == 1:  # a bare path (or a Windows drive)
        return location
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


def list_files(location: str, io: Any = None) -> Iterator[ListedFile]:
    """Every file under ``location`` (recursive), through a pyarrow filesystem, which
    speaks both local paths and object stores. Local folders are listed where pyiceberg
    writes (see :func:`canonical`), and their files named the same way as the location
    (a bare path, or ``file://`` + the path). ``io`` is the table's pyiceberg FileIO: an
    S3 location is listed with its endpoint, region and keys (without it, pyarrow's
    defaults and the standard AWS chain)."""
    from pyarrow import fs as pafs

    parsed = urlparse(location)
    scheme = parsed.scheme if parsed.scheme and len(parsed.scheme) > 1 else ""
    filesystem: pafs.FileSystem
    if scheme == "file" and ("#" in location or "?" in location):
        # pyiceberg cuts such a location at the '?' or '#': listing "the folder" would
        # list another one, and orphan removal would delete what it should not.
        raise ConfigError(
            f"{location}: a file:// location with '#' or '?' in it names another folder than "
            "it seems to; configure the warehouse as a bare path (/abs/folder) instead"
        )
    if scheme in ("", "file"):
        filesystem, root = pafs.LocalFileSystem(), canonical(location)
    elif scheme in ("s3", "s3a", "s3n") and io is not None:
        from lakehouse.storage import filesystem_for

        filesystem, root, _ = filesystem_for(location, io)
    else:
        filesystem, root = pafs.FileSystem.from_uri(location)
    selector = pafs.FileSelector(root, recursive=True, allow_not_found=True)
    for info in filesystem.get_file_info(selector):
        if info.type != pafs.FileType.File:
            continue
        uri = info.path if scheme == "" else f"{scheme}://{info.path}"
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
