"""The project's exception hierarchy: one root, with retryable and terminal kinds.

Library errors are wrapped with ``raise ... from exc`` so the cause stays visible.
:func:`exit_code_for` maps an error to the exit code every command uses (:class:`ExitCode`).
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """The exit codes of every ``lakehouse`` command (numbers from ``sysexits.h``)."""

    OK = 0
    PROBLEMS = 1  # ran, but some records were rejected or problems were found
    USAGE = 2  # usage or configuration error: fix the command or the settings
    INTERNAL = 70  # EX_SOFTWARE: an unexpected error, a bug
    UNAVAILABLE = 75  # EX_TEMPFAIL: catalog or storage unavailable, run again later
    INTERRUPTED = 130  # Ctrl-C (SIGINT) in a one-shot command: 128 + the signal's number


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


def exit_code_for(exc: BaseException) -> ExitCode:
    """2 for configuration and usage errors, 75 for transient ones (:class:`RetryableError`:
    catalog or storage unavailable, a lost commit race), 1 for the other errors raised on
    purpose (a component refused the work), 70 for anything else: an unexpected error."""
    if isinstance(exc, (ConfigError, UsageError)):
        return ExitCode.USAGE
    if isinstance(exc, RetryableError):
        return ExitCode.UNAVAILABLE
    if isinstance(exc, LakehouseError):
        return ExitCode.PROBLEMS
    return ExitCode.INTERNAL
