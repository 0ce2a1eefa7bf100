"""A per-table maintenance lease, kept in the catalog itself as a table property.

Why the catalog: every scheduler already reaches it (no extra lock service), and a
table-metadata commit is the one optimistic compare-and-set every Iceberg catalog has.
Iceberg's standard commit requirements cannot assert a property value, so the lease adds
its own requirement (:class:`AssertPropertyValue`). pyiceberg's client-side catalogs
(SQL on SQLite or PostgreSQL, Glue, Hive, DynamoDB) check requirements against the
freshly loaded metadata inside their atomic swap, which makes it a true CAS there. A REST
catalog checks requirements on the server, which does not know ours: there the lease
refuses to work (:class:`LeaseUnsupportedError`) rather than pretend.

The lease coordinates; it is not what keeps data safe. Two compactors that run at once
anyway (an expired lease, a manual run) still lose and duplicate nothing: each rewrite
commit validates that its input files still exist.

Leases expire (``ttl``); holders renew between units of work and stop when a renewal
finds the lease taken over. Expiry compares wall clocks of different machines, so keep
clocks synchronised and the ttl well above the skew.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pyiceberg.exceptions import CommitFailedException
from pyiceberg.table import Table
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.update import (
    AssertTableUUID,
    RemovePropertiesUpdate,
    SetPropertiesUpdate,
    TableUpdate,
    ValidatableTableRequirement,
)

from catalog.commit import CommitConflictError, RetryPolicy, commit_with_retries
from catalog.transaction import begin, commit_updates
from maintenance.errors import LeaseHeldError, LeaseLostError, LeaseUnsupportedError

log = logging.getLogger(__name__)

LEASE_PROPERTY = "lakehouse.maintenance.lease"
DEFAULT_LEASE_TTL = timedelta(minutes=15)
Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def default_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class Lease:
    owner: str
    token: str
    acquired_at: datetime
    expires_at: datetime

    def expired(self, now: datetime) -> bool:
        return now >= self.expires_at

    def to_json(self) -> str:
        return json.dumps(
            {
                "owner": self.owner,
                "token": self.token,
                "acquired_at": self.acquired_at.isoformat(),
                "expires_at": self.expires_at.isoformat(),
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, raw: str | None) -> Lease | None:
        """The lease a property holds; None when absent or unreadable (treated as free)."""
        if not raw:
            return None
        try:
            data = json.loads(raw)
            return cls(
                owner=str(data["owner"]),
                token=str(data["token"]),
                acquired_at=datetime.fromisoformat(data["acquired_at"]),
                expires_at=datetime.fromisoformat(data["expires_at"]),
            )
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring unreadable lease property %r", raw)
            return None

    def to_dict(self) -> dict[str, Any]:
        return json.loads(self.to_json())  # type: ignore[no-any-return]


class AssertPropertyValue(ValidatableTableRequirement):
    """Commit requirement: table property ``key`` still has ``value`` (None: absent)."""

    type: Literal["lakehouse-assert-property"] = "lakehouse-assert-property"
    key: str
    value: str | None = None

    def validate(self, base_metadata: TableMetadata | None) -> None:  # type: ignore[override]
        if base_metadata is None:
            raise CommitFailedException("Requirement failed: current table metadata is missing")
        current = base_metadata.properties.get(self.key)
        if current != self.value:
            raise CommitFailedException(
                f"Requirement failed: property {self.key} changed concurrently"
            )


def read_lease(table: Table) -> Lease | None:
    return Lease.from_json(table.properties.get(LEASE_PROPERTY))


def compare_and_set(
    table: Table,
    key: str,
    expected: str | None,
    *,
    set_properties: Mapping[str, str] | None = None,
    remove: tuple[str, ...] = (),
) -> None:
    """Set/remove table properties only if ``key`` still holds ``expected``.

    Raises CommitFailedException when it does not (or the catalog swap lost a race)."""
    _check_catalog(table)
    updates: list[TableUpdate] = []
    if set_properties:
        updates.append(SetPropertiesUpdate(updates=dict(set_properties)))
    if remove:
        updates.append(RemovePropertiesUpdate(removals=list(remove)))
    requirements = (
        AssertTableUUID(uuid=table.metadata.table_uuid),
        AssertPropertyValue(key=key, value=expected),
    )
    commit_updates(table, updates, requirements)


def _check_catalog(table: Table) -> None:
    try:
        from pyiceberg.catalog.rest import RestCatalog
    except ImportError:  # pragma: no cover
        return
    if isinstance(table.catalog, RestCatalog):
        raise LeaseUnsupportedError(
            "the maintenance lease needs a catalog that validates commit requirements client-side "
            "(SQL, Glue, Hive, DynamoDB); on a REST catalog run a single scheduler and pass --no-lease"
        )


class _NotOurs(Exception):
    """The lease property no longer holds our lease."""


class TableLease:
    """Acquire, renew and release the maintenance lease of one table.

    Each is a compare-and-set commit; one that loses a race to another commit looks at
    the lease again and retries under the project's commit retry policy (``attempts``
    overrides its number of attempts). ``key`` is the table property that holds the
    lease and ``what`` its name in messages: another kind of worker (continuous ingest)
    keeps its own lease beside the maintenance one."""

    def __init__(
        self,
        table: Table,
        *,
        owner: str | None = None,
        ttl: timedelta = DEFAULT_LEASE_TTL,
        clock: Clock = _utcnow,
        attempts: int | None = None,
        key: str = LEASE_PROPERTY,
        what: str = "maintenance lease",
    ) -> None:
        self.table = table
        self.key, self.what = key, what
        self.owner = owner or default_owner()
        self.ttl = ttl
        self.clock = clock
        self.attempts = attempts
        self.lease: Lease | None = None
        self.took_over: Lease | None = None  # the expired lease this one replaced

    def _policy(self) -> RetryPolicy:
        policy = RetryPolicy.for_table(self.table)
        return policy if self.attempts is None else policy.with_attempts(self.attempts)

    def acquire(self) -> Lease:
        """Take the lease if free, expired or left by this owner; :class:`LeaseHeldError`
        if someone else holds it."""

        def attempt(_: int) -> tuple[Lease, Lease | None]:
            raw = self.table.properties.get(self.key)
            current = Lease.from_json(raw)
            now = self.clock()
            # A live lease of our own owner was left by one of our runs that could not give
            # it back (the catalog was unreachable at release): it is ours to take again.
            if current is not None and not current.expired(now) and current.owner != self.owner:
                raise LeaseHeldError(
                    f"{self.what} of {'.'.join(self.table.name())} is held by {current.owner} "
                    f"until {current.expires_at.isoformat()}"
                )
            lease = Lease(self.owner, uuid.uuid4().hex, now, now + self.ttl)
            # fails when someone else moved first (or an unrelated commit): look again
            compare_and_set(self.table, self.key, raw, set_properties={self.key: lease.to_json()})
            return lease, current

        try:
            lease, current = commit_with_retries(
                self.table,
                attempt,
                what=f"the {self.what}",
                policy=self._policy(),
                refresh_first=True,
            )
        except CommitConflictError as exc:
            raise LeaseHeldError(
                f"could not acquire the {self.what}: the table kept changing"
            ) from exc
        if current is not None and current.owner == self.owner:
            log.info("took back our own %s, left by an earlier run", self.what)
        elif current is not None:
            log.warning("took over the expired %s of %s", self.what, current.owner)
        self.lease, self.took_over = lease, current
        return lease

    def renew(self) -> Lease:
        """Extend our lease; :class:`LeaseLostError` if it is no longer ours."""
        mine = self._mine()

        def attempt(number: int) -> Lease:
            if number > 1 and self.table.properties.get(self.key) != mine.to_json():
                self.lease = None
                raise LeaseLostError(f"the {self.what} was taken over")
            now = self.clock()
            lease = Lease(mine.owner, mine.token, mine.acquired_at, now + self.ttl)
            compare_and_set(
                self.table, self.key, mine.to_json(), set_properties={self.key: lease.to_json()}
            )
            self.lease = lease
            return lease

        try:
            return commit_with_retries(
                self.table, attempt, what=f"the {self.what} renewal", policy=self._policy()
            )
        except CommitConflictError as exc:
            raise LeaseLostError(
                f"could not renew the {self.what}: the table kept changing"
            ) from exc

    def renew_if_due(self) -> bool:
        """Renew when less than half the ttl is left. False when the lease is lost."""
        if self.lease is None:
            return False
        if self.lease.expires_at - self.clock() > self.ttl / 2:
            return True
        try:
            self.renew()
            return True
        except LeaseLostError as exc:
            log.error("%s", exc)
            return False

    def release(self, properties: Mapping[str, str] | None = None) -> bool:
        """Give the lease back, setting ``properties`` in the same commit. Returns False
        when it was no longer ours (the properties are then set on their own)."""
        if self.lease is None:
            if properties:
                _set_properties(self.table, properties)
            return False
        mine = self.lease
        self.lease = None

        def attempt(number: int) -> None:
            if number > 1 and self.table.properties.get(self.key) != mine.to_json():
                raise _NotOurs
            compare_and_set(
                self.table,
                self.key,
                mine.to_json(),
                set_properties=properties,
                remove=(self.key,),
            )

        try:
            commit_with_retries(
                self.table, attempt, what=f"the {self.what} release", policy=self._policy()
            )
            return True
        except (_NotOurs, CommitConflictError):
            pass
        log.warning("%s was no longer ours at release", self.what)
        if properties:
            _set_properties(self.table, properties)
        return False

    def _mine(self) -> Lease:
        if self.lease is None:
            raise LeaseLostError(f"no {self.what} is held")
        return self.lease

    def __enter__(self) -> TableLease:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _set_properties(table: Table, properties: Mapping[str, str]) -> None:
    def attempt(_: int) -> None:
        begin(table).set_properties(dict(properties)).commit_transaction()

    try:
        commit_with_retries(table, attempt, what="maintenance properties")
    except CommitConflictError as exc:
        log.warning("could not record maintenance properties: %s", exc)
