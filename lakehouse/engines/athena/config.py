"""Athena settings, read from the environment when called (never at import time).

| variable | default | |
|---|---|---|
| ``LAKEHOUSE_ATHENA_OUTPUT`` | (required) | ``s3://bucket/prefix/`` for query results |
| ``LAKEHOUSE_ATHENA_WORKGROUP`` | ``primary`` | |
| ``LAKEHOUSE_ATHENA_DATABASE`` | the events table's namespace | default database of a query |
| ``LAKEHOUSE_ATHENA_CATALOG`` | ``AwsDataCatalog`` | the Glue Data Catalog |
| ``LAKEHOUSE_ATHENA_TIMEOUT`` | ``30m`` | how long to wait for one query |

Credentials and region come from the standard AWS chain (boto3's default session):
``AWS_PROFILE``, ``AWS_ACCESS_KEY_ID``..., ``AWS_REGION``; ``AWS_ENDPOINT_URL`` or
``AWS_ENDPOINT_URL_ATHENA`` point the client at another endpoint (an emulator).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from lakehouse.durations import parse_duration
from lakehouse.engines.athena.errors import AthenaConfigError
from lakehouse.errors import UsageError
from lakehouse.settings import Settings

OUTPUT_VAR = "LAKEHOUSE_ATHENA_OUTPUT"
WORKGROUP_VAR = "LAKEHOUSE_ATHENA_WORKGROUP"
DATABASE_VAR = "LAKEHOUSE_ATHENA_DATABASE"
CATALOG_VAR = "LAKEHOUSE_ATHENA_CATALOG"
TIMEOUT_VAR = "LAKEHOUSE_ATHENA_TIMEOUT"

DEFAULT_WORKGROUP = "primary"
DEFAULT_CATALOG = "AwsDataCatalog"
DEFAULT_TIMEOUT = timedelta(minutes=30)

_S3_URI = re.compile(r"^s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/.*)?$")
_WORKGROUP = re.compile(r"^[A-Za-z0-9._\-]{1,128}$")
_DATABASE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")
_CATALOG = re.compile(r"^[A-Za-z0-9_\-@]{1,256}$")


@dataclass(frozen=True)
class AthenaConfig:
    """Where and how queries run: result location, workgroup, default database/catalog."""

    output_location: str
    workgroup: str = DEFAULT_WORKGROUP
    database: str = "analytics"
    catalog: str = DEFAULT_CATALOG
    timeout: timedelta = DEFAULT_TIMEOUT

    def __post_init__(self) -> None:
        if not _S3_URI.match(self.output_location):
            raise AthenaConfigError(
                f"{OUTPUT_VAR}={self.output_location!r} is not an s3://bucket/prefix/ location; "
                "write it like s3://my-bucket/athena-results/"
            )
        if not _WORKGROUP.match(self.workgroup):
            raise AthenaConfigError(f"{WORKGROUP_VAR}={self.workgroup!r} is not a workgroup name")
        if not _DATABASE.match(self.database):
            raise AthenaConfigError(
                f"{DATABASE_VAR}={self.database!r}: a database name is letters, digits and '_'"
            )
        if not _CATALOG.match(self.catalog):
            raise AthenaConfigError(f"{CATALOG_VAR}={self.catalog!r} is not a catalog name")
        if self.timeout <= timedelta(0):
            raise AthenaConfigError(f"{TIMEOUT_VAR} must be positive")

    @classmethod
    def from_env(
        cls,
        settings: Settings | None = None,
        env: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> AthenaConfig:
        """Read the ``LAKEHOUSE_ATHENA_*`` variables now; ``overrides`` (CLI flags) win,
        ``None`` overrides are ignored. The database defaults to the table's namespace."""
        env = os.environ if env is None else env
        settings = settings or Settings.from_env(env)
        values: dict[str, Any] = {"database": settings.table.namespace}
        for var, key in (
            (OUTPUT_VAR, "output_location"),
            (WORKGROUP_VAR, "workgroup"),
            (DATABASE_VAR, "database"),
            (CATALOG_VAR, "catalog"),
        ):
            if env.get(var, "").strip():
                values[key] = env[var].strip()
        if env.get(TIMEOUT_VAR, "").strip():
            try:
                values["timeout"] = parse_duration(env[TIMEOUT_VAR])
            except UsageError as exc:
                raise AthenaConfigError(f"{TIMEOUT_VAR}: {exc}") from exc
        values.update({k: v for k, v in overrides.items() if v is not None})
        if "output_location" not in values:
            raise AthenaConfigError(
                f"{OUTPUT_VAR} is not set: Athena needs an S3 location for query results, "
                f"e.g. export {OUTPUT_VAR}=s3://my-bucket/athena-results/"
            )
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return {
            "output_location": self.output_location,
            "workgroup": self.workgroup,
            "database": self.database,
            "catalog": self.catalog,
            "timeout_seconds": self.timeout.total_seconds(),
        }
