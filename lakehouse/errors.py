"""The project's exception hierarchy: one root, with retryable and terminal kinds.

Library errors are wrapped with ``raise ... from exc`` so the cause stays visible.
The CLI maps :class:`ConfigError` and :class:`UsageError` to exit code 2 and
:class:`CatalogUnavailable` to exit code 75 (temporary failure: run it again later).
"""

from __future__ import annotations


class LakehouseError(Exception):
    """Root of every error this project raises on purpose."""

    retryable: bool = False


class RetryableError(LakehouseError):
    """A transient failure (commit conflict, throttling, a server restarting): try again."""

    retryable = True


class TerminalError(LakehouseError):
    """A failure that retrying will not fix."""


class ConfigError(TerminalError):
    """A setting is missing or invalid. The message names the setting and how to set it."""


class UsageError(TerminalError):
    """The caller asked for something that cannot be done as asked."""


class CommitError(RetryableError):
    """A catalog commit failed after its retries; nothing from it is visible."""


class StorageError(RetryableError):
    """Reading or writing files failed (after the storage client's own retries): a missing
    bucket, denied access, a network failure. Nothing half-done is committed; re-run."""


class CatalogUnavailable(RetryableError):
    """The catalog cannot be reached: its database is down or restarting, refused or
    dropped the connection, or is busy. Nothing is wrong with the settings; run again
    later. A connection dropped in the middle of a commit may leave that commit applied
    or not: the writers' idempotency keys make running the same batch again safe."""


class ComponentError(TerminalError):
    """An external component (Trino, PostgreSQL, an emulator) could not be used."""
