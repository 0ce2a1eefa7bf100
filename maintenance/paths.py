"""File locations: one canonical form for comparing paths, listing under a location,
and the injectable delete function destructive jobs use."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
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


class IoDelete:
    """The default delete: through the table's FileIO (local, S3, GCS, ...), one file per
    call. Many S3 objects are deleted in batches instead (:meth:`delete_many`)."""

    S3_BATCH = 1000  # the most keys one S3 DeleteObjects request takes

    def __init__(self, io: FileIO) -> None:
        self.io = io
        self.batches = 0  # DeleteObjects requests sent, for logs and tests

    def __call__(self, location: str) -> None:
        self.io.delete(location)

    def delete_many(self, locations: list[str]) -> tuple[int, int]:
        """Delete every location; returns (deleted, failed). Objects on S3 go in
        DeleteObjects requests of up to 1,000 keys (a key already gone counts as
        deleted); a batch the service refuses as a whole falls back to one delete per
        object; anything else is deleted one by one."""
        by_bucket: dict[str, list[str]] = {}
        single: list[str] = []
        for location in locations:
            parsed = urlparse(location)
            if parsed.scheme in ("s3", "s3a", "s3n") and parsed.netloc:
                by_bucket.setdefault(parsed.netloc, []).append(location)
            else:
                single.append(location)
        deleted, failed = _one_by_one(single, self)
        if by_bucket:
            client = s3_client(self.io.properties)
            for bucket, group in by_bucket.items():
                for start in range(0, len(group), self.S3_BATCH):
                    batch = group[start : start + self.S3_BATCH]
                    done, bad = self._delete_batch(client, bucket, batch)
                    deleted, failed = deleted + done, failed + bad
        return deleted, failed

    def _delete_batch(self, client: Any, bucket: str, batch: list[str]) -> tuple[int, int]:
        keys = {urlparse(loc).path.lstrip("/"): loc for loc in batch}
        try:
            self.batches += 1
            response = client.delete_objects(
                Bucket=bucket,
                Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True},
            )
        except Exception as exc:  # the whole request failed: try each object once
            log.warning(
                "batch delete of %d objects in %s failed (%s: %s); deleting one by one",
                len(batch),
                bucket,
                type(exc).__name__,
                exc,
            )
            return _one_by_one(batch, self)
        errors = response.get("Errors") or []
        for error in errors[:20]:
            log.warning(
                "could not delete %s: %s: %s",
                keys.get(error.get("Key", ""), error.get("Key")),
                error.get("Code"),
                error.get("Message"),
            )
        return len(batch) - len(errors), len(errors)


def io_delete(io: FileIO) -> IoDelete:
    """The default delete function for a table's FileIO (see :class:`IoDelete`)."""
    return IoDelete(io)


def s3_client(properties: Mapping[str, Any]) -> Any:
    """A boto3 S3 client configured like pyiceberg's S3 access (``s3.*`` keys with the
    ``client.*`` fallbacks; without keys, the standard AWS credential chain)."""
    import boto3
    from botocore.config import Config

    def prop(*names: str) -> str | None:
        return next((str(properties[n]) for n in names if properties.get(n)), None)

    path_style = prop("s3.force-virtual-addressing") != "true" and prop("s3.endpoint")
    return boto3.client(
        "s3",
        endpoint_url=prop("s3.endpoint"),
        region_name=prop("s3.region", "client.region"),
        aws_access_key_id=prop("s3.access-key-id", "client.access-key-id"),
        aws_secret_access_key=prop("s3.secret-access-key", "client.secret-access-key"),
        aws_session_token=prop("s3.session-token", "client.session-token"),
        config=Config(
            retries={"mode": "adaptive", "max_attempts": 8},
            s3={"addressing_style": "path"} if path_style else None,
        ),
    )


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
    deleted; other failures are logged and counted, never raised. A delete function
    with a ``delete_many`` method (:class:`IoDelete`) gets the whole list at once."""
    many = getattr(delete, "delete_many", None)
    if many is not None and len(locations) > 1:
        deleted, failed = many(locations)
        return int(deleted), int(failed)
    return _one_by_one(locations, delete)


def _one_by_one(locations: list[str], delete: DeleteFn) -> tuple[int, int]:
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
