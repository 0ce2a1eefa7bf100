"""Errors of the Athena client. Each says what went wrong and, where it can, what to do."""

from __future__ import annotations

from lakehouse.errors import ComponentError, ConfigError


class AthenaError(ComponentError):
    """Athena could not be reached or refused a request."""


class AthenaConfigError(ConfigError):
    """An Athena setting is missing or invalid; the message names the variable."""


class AthenaQueryError(AthenaError):
    """A query ended in ``FAILED`` or ``CANCELLED``.

    ``state`` is Athena's final state, ``reason`` its ``StateChangeReason`` (the SQL error
    for a failed query), ``error_type``/``error_category`` come from ``Status.AthenaError``
    when Athena sends them (category 1 system, 2 user, 3 other).
    """

    def __init__(
        self,
        message: str,
        *,
        query_id: str,
        state: str,
        reason: str | None = None,
        error_type: int | None = None,
        error_category: int | None = None,
        athena_retryable: bool = False,
    ) -> None:
        super().__init__(message)
        self.query_id = query_id
        self.state = state
        self.reason = reason
        self.error_type = error_type
        self.error_category = error_category
        self.athena_retryable = athena_retryable


class AthenaQueryFailedError(AthenaQueryError):
    """The query ended in ``FAILED`` (a SQL error, a missing table, a permission...)."""


class AthenaQueryCancelledError(AthenaQueryError):
    """The query ended in ``CANCELLED`` (stopped by someone, or by a workgroup limit)."""


class AthenaTimeoutError(AthenaError):
    """The query did not finish within the timeout (it was asked to stop)."""

    def __init__(self, message: str, *, query_id: str, last_state: str) -> None:
        super().__init__(message)
        self.query_id = query_id
        self.last_state = last_state


class AthenaThrottledError(AthenaError):
    """Athena kept throttling the requests (``TooManyRequestsException`` /
    ``ThrottlingException``) after every retry: transient, try again later."""

    retryable = True
