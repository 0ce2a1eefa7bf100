"""Retries of whole idempotent steps on transient storage errors.

The S3 client retries some failures itself, but not all: measured with pyarrow 26,
throttling (503 SlowDown) on GetObject and on CompleteMultipartUpload is not retried.
So the steps that can be repeated safely — reading a landing file, committing a batch
(whose idempotency key is checked again first) — are retried here with exponential
backoff and jitter. Terminal errors (missing bucket, denied access) are not retried.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from lakehouse.errors import StorageError

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_ATTEMPTS = 6


def attempts() -> int:
    """``LAKEHOUSE_STORAGE_RETRIES``: attempts of one step (default 6)."""
    raw = os.environ.get("LAKEHOUSE_STORAGE_RETRIES", "")
    return max(1, int(raw)) if raw.strip().isdigit() else DEFAULT_ATTEMPTS


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    log.warning("transient storage error (attempt %d), retrying: %s", state.attempt_number, exc)


def retry_storage(
    step: Callable[[], T], *, max_attempts: int | None = None, initial_wait: float = 0.2
) -> T:
    """Run ``step``, retrying on :class:`StorageError` with backoff; re-raise the last."""
    retrying = Retrying(
        retry=retry_if_exception_type(StorageError),
        stop=stop_after_attempt(max_attempts or attempts()),
        wait=wait_exponential_jitter(initial=initial_wait, max=10.0),
        before_sleep=_log_retry,
        reraise=True,
    )
    return retrying(step)
