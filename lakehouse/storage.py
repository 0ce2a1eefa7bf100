"""Filesystems for warehouse and landing-zone locations (local paths, ``file://``,
``s3://``), built from the same pyiceberg ``s3.*`` properties as the catalog's FileIO,
so a landing zone on S3 is read with the endpoint, region and credentials the tables
use. Without explicit keys the standard AWS credential chain applies."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from pyarrow import fs as pafs
from pyarrow.fs import AwsStandardS3RetryStrategy

from lakehouse.errors import ConfigError, LakehouseError, StorageError

S3_RETRY_ATTEMPTS = 10
S3_ATTEMPTS_VARIABLE = "LAKEHOUSE_S3_ATTEMPTS"
RETRY_STRATEGY_PROPERTY = "s3.retry-strategy-impl"
RETRY_STRATEGY_CLASS = "lakehouse.storage.PatientS3RetryStrategy"
FILE_IO_PROPERTY = "py-io-impl"
FILE_IO_CLASS = "catalog.files.LakehouseFileIO"
"""The FileIO the catalogs use unless told otherwise: pyiceberg's ``PyArrowFileIO`` reading
each manifest once per process and small files in one request (:mod:`catalog.files`)."""


class PatientS3RetryStrategy(AwsStandardS3RetryStrategy):  # type: ignore[misc]
    """The AWS standard retry strategy (exponential backoff with jitter on throttling,
    503 SlowDown and transient network errors) with more attempts than the default 3:
    ``LAKEHOUSE_S3_ATTEMPTS`` (default 10). pyiceberg instantiates it by name from
    ``s3.retry-strategy-impl``."""

    def __init__(self) -> None:
        super().__init__(max_attempts=s3_attempts())


def s3_attempts() -> int:
    """``LAKEHOUSE_S3_ATTEMPTS``: attempts of one S3 request by the S3 client (default 10)."""
    raw = os.environ.get(S3_ATTEMPTS_VARIABLE, "").strip()
    return max(1, int(raw)) if raw.isdigit() else S3_RETRY_ATTEMPTS


def with_storage_defaults(properties: dict[str, Any]) -> dict[str, Any]:
    """Catalog properties plus our defaults for what the user did not set."""
    out = dict(properties)
    out.setdefault(RETRY_STRATEGY_PROPERTY, RETRY_STRATEGY_CLASS)
    out.setdefault(FILE_IO_PROPERTY, FILE_IO_CLASS)
    return out


def filesystem_for(location: str, io: Any = None) -> tuple[pafs.FileSystem, str, str]:
    """(filesystem, path inside it, URI prefix naming files) for a location.

    ``io`` is a pyiceberg ``PyArrowFileIO`` whose properties configure S3; without it
    an S3 location uses pyarrow's defaults (the standard AWS chain)."""
    if "://" not in location:
        return pafs.LocalFileSystem(), str(Path(location).expanduser().resolve()), "file://"
    parsed = urlparse(location)
    scheme = parsed.scheme.lower()
    if scheme == "file":
        return pafs.LocalFileSystem(), parsed.path, "file://"
    if scheme in {"s3", "s3a", "s3n"}:
        if not parsed.netloc:
            raise ConfigError(f"{location}: an S3 location needs a bucket (s3://BUCKET/prefix)")
        path = f"{parsed.netloc}{parsed.path}".rstrip("/")
        if io is not None and hasattr(io, "fs_by_scheme"):
            return io.fs_by_scheme("s3", parsed.netloc), path, "s3://"
        filesystem, _ = pafs.FileSystem.from_uri(location)
        return filesystem, path, "s3://"
    raise ConfigError(
        f"{location}: unsupported location scheme {scheme!r} (use a path, file:// or s3://)"
    )


# what the S3 client (pyarrow's, or boto's) says when the service, not the request, failed:
# throttling, 5xx answers, a dropped or refused connection, a timeout
_TRANSIENT = (
    "HTTP status 50",  # pyarrow's "AWS Error UNKNOWN (HTTP status 503) during HeadObject"
    "SERVICE_UNAVAILABLE",
    "SLOW_DOWN",
    "SlowDown",
    "ServiceUnavailable",
    "Service Unavailable",
    "INTERNAL_FAILURE",
    "InternalError",
    "NETWORK_CONNECTION",
    "REQUEST_TIMEOUT",
    "RequestTimeout",
    "Connection refused",
    "Connection reset",
    "HTTP response code: 500",
    "HTTP response code: 502",
    "HTTP response code: 503",
    "HTTP response code: 504",
)


def transient_storage_error(exc: BaseException) -> StorageError | None:
    """A :class:`StorageError` (retryable, exit 75) for a raw ``OSError`` that says the
    storage service was unavailable (pyiceberg lets the S3 client's errors through on its
    reads of table metadata and manifests), else None."""
    if isinstance(exc, LakehouseError) or not isinstance(exc, OSError):
        return None
    text = str(exc)
    if any(marker in text for marker in _TRANSIENT):
        error = StorageError(f"storage unavailable: {' '.join(text.split())}")
        error.__cause__ = exc
        return error
    return None


_MISSING_BUCKET = ("NO_SUCH_BUCKET", "NoSuchBucket", "bucket does not exist")
_DENIED = ("ACCESS_DENIED", "AccessDenied", "Access Denied", "HTTP response code: 403")


def storage_error(exc: BaseException, location: str, action: str) -> LakehouseError:
    """A clear error for a failed storage call: a missing bucket and denied access are
    configuration problems (exit 2); anything left after the client's retries is a
    storage failure to retry later."""
    text = str(exc)
    bucket = urlparse(location).netloc if "://" in location else ""
    if any(marker in text for marker in _MISSING_BUCKET):
        return ConfigError(
            f"cannot {action} {location}: bucket {bucket!r} does not exist (or is in another "
            "region); create it or fix the warehouse / landing location"
        )
    if any(marker in text for marker in _DENIED):
        return ConfigError(
            f"cannot {action} {location}: access denied. The credentials in use need "
            "s3:ListBucket on the bucket and s3:GetObject, s3:PutObject, s3:DeleteObject on "
            "its objects (see README, On AWS)"
        )
    return StorageError(f"cannot {action} {location}: {text}")
