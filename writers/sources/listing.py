"""Listing a landing zone: which files under the given paths are landing files.

Every regular file is, except hidden ones and in-progress markers (a name or folder that
starts with ``.`` or ``_``, a name ending in ``.tmp``), and those ``include`` / ``exclude``
globs leave out (matched against the key below the root and against the name). What is
left out is counted by reason, so a run that finds files but takes none can say why.

Local folders are walked by hand: symbolic links are followed only to targets inside the
landing root, a folder reached twice (a loop) is walked once, and a file reached by two
paths is listed once (under the path that sorts first). S3 prefixes are listed with
``ListObjectsV2`` (boto3, configured like the tables' FileIO), which can start after a key.

``start_after`` (relative to a root) lets a zone whose keys sort by time be listed from a
checkpoint: S3 lists after it, the local walk skips folders whose keys all sort before it.
"""

from __future__ import annotations

import fnmatch
import os
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pyarrow import fs as pafs

from lakehouse.errors import ConfigError, UsageError
from lakehouse.storage import filesystem_for, storage_error

HIDDEN = "hidden or in-progress (name starts with '.' or '_', or ends in .tmp)"
NOT_INCLUDED = "not matched by --include"
EXCLUDED = "matched by --exclude"
OUTSIDE = "symbolic link to a target outside the landing root"
BROKEN = "broken symbolic link"
SECOND_PATH = "second path to a file already listed"
NOT_REGULAR = "not a regular file"


@dataclass(frozen=True)
class SourceFile:
    """A landing file: ``uri`` names it (and its position), ``path`` opens it in the
    filesystem, ``key`` is its path below the root it was found under, ``stamp`` what
    names this version of it (S3: the ETag; local: inode and modification time in ns)."""

    uri: str
    path: str
    size: int
    mtime: datetime
    root: str = ""
    key: str = ""
    stamp: str | None = None


def local_stamp(st: os.stat_result) -> str:
    return f"ino={st.st_ino},mtime_ns={st.st_mtime_ns}"


@dataclass
class Listing:
    filesystem: pafs.FileSystem
    files: list[SourceFile]
    ignored: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)
    pages: int = 0  # LIST requests made (S3)


@dataclass(frozen=True)
class Selection:
    """Which names are landing files (``include``/``exclude`` globs)."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def why_not(self, key: str) -> str | None:
        parts = [p for p in key.split("/") if p]
        if not parts:
            return None
        name = parts[-1]
        if any(p.startswith((".", "_")) for p in parts) or name.endswith(".tmp"):
            return HIDDEN
        if self.include and not any(_matches(key, name, g) for g in self.include):
            return NOT_INCLUDED
        if any(_matches(key, name, g) for g in self.exclude):
            return EXCLUDED
        return None


def _matches(key: str, name: str, glob: str) -> bool:
    return fnmatch.fnmatchcase(key, glob) or fnmatch.fnmatchcase(name, glob)


LIST_PAGE_SIZE = 1000
"""Keys asked per S3 LIST request (the most S3 returns)."""

StartAfter = Callable[[str], str | None]
"""Given a root's URI (ending in ``/``), the key below it to list after, or None."""


def list_zone(
    locations: Sequence[str],
    io: Any = None,
    *,
    selection: Selection | None = None,
    start_after: StartAfter | None = None,
) -> Listing:
    """The landing files under the given files, folders or prefixes, in URI order."""
    selection = selection or Selection()
    found: dict[str, SourceFile] = {}
    listing: Listing | None = None
    for location in locations:
        fs_, path, prefix = filesystem_for(location, io)
        if listing is None:
            listing = Listing(fs_, [])
        elif type(fs_) is not type(listing.filesystem):
            raise UsageError("ingest one kind of location at a time (local paths or s3://)")
        if prefix == "s3://":
            items = _list_s3(listing, location, path, io, selection, start_after)
        else:
            items = _list_local(listing, path, selection, start_after)
        for item in items:
            found.setdefault(item.uri, item)
    if listing is None:
        raise UsageError("no paths given to ingest")
    listing.files = [found[k] for k in sorted(found)]
    return listing


# --- local folders ---------------------------------------------------------------------


def _mtime(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _list_local(
    listing: Listing, path: str, selection: Selection, start_after: StartAfter | None
) -> list[SourceFile]:
    if not os.path.lexists(path):
        raise UsageError(f"no such file, folder or prefix: {path}")
    if not os.path.isdir(path):
        try:
            st = os.stat(path)
        except OSError as exc:
            raise storage_error(exc, path, "read") from exc
        return [
            SourceFile(
                "file://" + path, path, st.st_size, _mtime(st.st_mtime), "", path, local_stamp(st)
            )
        ]
    root_uri = "file://" + path.rstrip("/") + "/"
    after = start_after(root_uri) if start_after else None
    real_root = os.path.realpath(path)
    seen_dirs: set[str] = set()
    by_target: dict[str, SourceFile] = {}
    for rel, entry_path, st in _walk(listing, path, "", real_root, seen_dirs, after):
        why = selection.why_not(rel)
        if why:
            listing.ignored[why] += 1
            continue
        f = SourceFile(
            root_uri + rel,
            entry_path,
            st.st_size,
            _mtime(st.st_mtime),
            root_uri,
            rel,
            local_stamp(st),
        )
        target = os.path.realpath(entry_path)
        other = by_target.get(target)
        if other is not None:
            listing.ignored[SECOND_PATH] += 1
            if f.uri >= other.uri:
                continue
        by_target[target] = f
    return list(by_target.values())


def _inside(target: str, root: str) -> bool:
    return target == root or target.startswith(root.rstrip("/") + "/")


def _walk(
    listing: Listing,
    folder: str,
    rel: str,
    real_root: str,
    seen_dirs: set[str],
    after: str | None,
) -> Iterator[tuple[str, str, os.stat_result]]:
    """(key, path, stat) of the regular files below ``folder``, links checked."""
    real = os.path.realpath(folder)
    if real in seen_dirs:
        return
    seen_dirs.add(real)
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        listing.notes.append(f"cannot list folder {folder}: {exc.strerror or exc}")
        return
    for entry in entries:
        key = rel + entry.name
        if entry.is_symlink():
            target = os.path.realpath(entry.path)
            if not os.path.exists(target):
                listing.ignored[BROKEN] += 1
                continue
            if not _inside(target, real_root):
                listing.ignored[OUTSIDE] += 1
                continue
        try:
            is_dir = entry.is_dir(follow_symlinks=True)
        except OSError:
            is_dir = False
        if is_dir:
            if after is not None and key + "/" < after and not after.startswith(key + "/"):
                continue  # every key below sorts before the checkpoint
            yield from _walk(listing, entry.path, key + "/", real_root, seen_dirs, after)
            continue
        if after is not None and key <= after:
            continue
        try:
            st = entry.stat(follow_symlinks=True)
        except OSError as exc:
            listing.notes.append(f"cannot read {entry.path}: {exc.strerror or exc}")
            continue
        if not entry.is_file(follow_symlinks=True):
            listing.ignored[NOT_REGULAR] += 1
            continue
        yield key, entry.path, st


# --- S3 --------------------------------------------------------------------------------


def s3_client(io: Any = None) -> Any:
    """A boto3 S3 client configured from the FileIO's ``s3.*`` properties (endpoint,
    region, keys), else from the standard AWS chain."""
    import boto3
    import boto3.session
    import botocore.session
    from botocore.config import Config

    props = dict(getattr(io, "properties", {}) or {})
    kwargs: dict[str, Any] = {}
    for ours, theirs in (
        ("s3.endpoint", "endpoint_url"),
        ("s3.region", "region_name"),
        ("s3.access-key-id", "aws_access_key_id"),
        ("s3.secret-access-key", "aws_secret_access_key"),
        ("s3.session-token", "aws_session_token"),
    ):
        if props.get(ours):
            kwargs[theirs] = props[ours]
    style = "path" if str(props.get("s3.path-style-access", "")).lower() == "true" else "auto"
    config = Config(
        retries={"max_attempts": 10, "mode": "standard"}, s3={"addressing_style": style}
    )
    session = botocore.session.get_session()
    # a LIST page's LastModified values parsed by the standard library, not dateutil
    parsers = session.get_component("response_parser_factory")
    parsers.set_parser_defaults(timestamp_parser=_timestamp)
    return boto3.session.Session(botocore_session=session).client("s3", config=config, **kwargs)


def _timestamp(value: Any) -> datetime:
    """An S3 timestamp (``2026-12-03T19:22:29.000Z``; RFC 1123 in headers)."""
    from botocore.utils import parse_timestamp

    try:
        return datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return parse_timestamp(value)  # type: ignore[no-any-return]


_clients: dict[tuple[tuple[str, str], ...], Any] = {}


def _client_for(io: Any) -> Any:
    """One client per S3 configuration (clients are thread-safe and keep connections)."""
    props = getattr(io, "properties", {}) or {}
    key = tuple(sorted((str(k), str(v)) for k, v in props.items() if str(k).startswith("s3.")))
    client = _clients.get(key)
    if client is None:
        client = _clients[key] = s3_client(io)
    return client


def _list_s3(
    listing: Listing,
    location: str,
    path: str,
    io: Any,
    selection: Selection,
    start_after: StartAfter | None,
) -> list[SourceFile]:
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, _, key_prefix = path.partition("/")
    client = _client_for(io)
    out: list[SourceFile] = []
    try:
        # a location ending in "/" names a prefix: no object of that exact name is asked for
        exact = (
            _head(client, bucket, key_prefix) if key_prefix and not location.endswith("/") else None
        )
        if exact is not None:
            size, mtime, etag = exact
            return [SourceFile("s3://" + path, path, size, mtime, "", key_prefix, etag)]
        prefix = key_prefix.rstrip("/") + "/" if key_prefix else ""
        root_uri = f"s3://{bucket}/{prefix}"
        after = start_after(root_uri) if start_after else None
        args: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
        if after:
            args["StartAfter"] = prefix + after
        listed = 0
        pages = client.get_paginator("list_objects_v2").paginate(
            **args, PaginationConfig={"PageSize": LIST_PAGE_SIZE}
        )
        for page in pages:
            listing.pages += 1
            for obj in page.get("Contents", ()):
                listed += 1
                rel = obj["Key"][len(prefix) :]
                if obj["Key"].endswith("/"):
                    continue  # a folder marker
                why = selection.why_not(rel)
                if why:
                    listing.ignored[why] += 1
                    continue
                mtime = obj["LastModified"]
                out.append(
                    SourceFile(
                        root_uri + rel,
                        f"{bucket}/{obj['Key']}",
                        int(obj["Size"]),
                        mtime if mtime.tzinfo else mtime.replace(tzinfo=UTC),
                        root_uri,
                        rel,
                        _etag(obj.get("ETag")),
                    )
                )
        if listed == 0 and not after:
            client.head_bucket(Bucket=bucket)  # a missing bucket says so
            raise UsageError(f"no such file, folder or prefix: {location}")
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in ("NoSuchBucket", "404") and "head_bucket" in str(exc.operation_name).lower():
            raise ConfigError(f"cannot read {location}: bucket {bucket!r} does not exist") from exc
        if code == "NoSuchBucket":
            raise ConfigError(f"cannot read {location}: bucket {bucket!r} does not exist") from exc
        raise storage_error(exc, location, "list") from exc
    except BotoCoreError as exc:
        raise storage_error(exc, location, "list") from exc
    return out


def _etag(raw: Any) -> str | None:
    return "etag=" + str(raw).strip('"') if raw else None


def _head(client: Any, bucket: str, key: str) -> tuple[int, datetime, str | None] | None:
    """Size, time and ETag of the object named exactly ``key``, or None."""
    from botocore.exceptions import ClientError

    if key.endswith("/"):
        return None
    try:
        head = client.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if str(exc.response.get("Error", {}).get("Code", "")) in ("404", "NoSuchKey", "NotFound"):
            return None
        raise
    mtime = head["LastModified"]
    return (
        int(head["ContentLength"]),
        mtime if mtime.tzinfo else mtime.replace(tzinfo=UTC),
        _etag(head.get("ETag")),
    )
