"""What every command shares: settings flags, text/JSON output, errors and exit codes.

Exit codes: 0 ok, 1 ran but found problems (rejected records, a failed group),
2 usage or configuration error, 75 the catalog could not be reached (a transient
failure, ``EX_TEMPFAIL``: run the command again later). Errors go to stderr; with
``--json`` as ``{"type": ..., "message": ..., "retryable": ...}``.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Mapping
from dataclasses import asdict, is_dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import click

from lakehouse.durations import format_duration
from lakehouse.errors import CatalogUnavailable, ConfigError, LakehouseError, UsageError
from lakehouse.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 75  # sysexits.h EX_TEMPFAIL: temporary failure, try again later


def settings_options(func: F) -> F:
    """``--home``, ``--catalog`` and ``--table``, resolved into a :class:`Settings`
    passed to the command as ``settings``."""

    @click.option(
        "--home",
        type=click.Path(path_type=Path),
        default=None,
        help="Folder of the embedded catalog and warehouse [env LAKEHOUSE_HOME; default ./.lakehouse].",
    )
    @click.option(
        "--catalog",
        default=None,
        help="A catalog configured the pyiceberg way (.pyiceberg.yaml or PYICEBERG_CATALOG__NAME__*) "
        "[env LAKEHOUSE_CATALOG; default: the embedded SQLite catalog].",
    )
    @click.option(
        "--table",
        default=None,
        help="The events table as NAMESPACE.NAME [env LAKEHOUSE_TABLE; default analytics.events].",
    )
    @functools.wraps(func)
    def wrapper(
        *args: Any, home: Path | None, catalog: str | None, table: str | None, **kwargs: Any
    ) -> Any:
        json_out = bool(kwargs.get("json_output"))
        try:
            settings = Settings.from_env(
                home=str(home) if home else None, catalog=catalog, table=table
            )
        except LakehouseError as exc:
            fail(exc, json_out)
        return func(*args, settings=settings, **kwargs)

    return wrapper  # type: ignore[return-value]


def json_option(func: F) -> F:
    return click.option("--json", "json_output", is_flag=True, help="Print the result as JSON.")(
        func
    )


def to_jsonable(value: Any) -> Any:
    if hasattr(value, "to_dict"):
        return to_jsonable(value.to_dict())
    if is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(asdict(value))
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, Path):
        return str(value)
    return value


def print_json(value: Any) -> None:
    click.echo(json.dumps(to_jsonable(value), indent=2, sort_keys=False))


def exit_code_for(exc: BaseException) -> int:
    """2 for usage/config errors, 75 for an unreachable catalog, 1 otherwise."""
    if isinstance(exc, (ConfigError, UsageError, click.UsageError)):
        return EXIT_USAGE
    if isinstance(exc, CatalogUnavailable):
        return EXIT_UNAVAILABLE
    return EXIT_PROBLEMS


def fail(exc: BaseException, json_out: bool) -> None:
    """Report an error on stderr and exit with :func:`exit_code_for`."""
    code = exit_code_for(exc)
    if json_out:
        retryable = bool(getattr(exc, "retryable", False))
        click.echo(
            json.dumps({"type": type(exc).__name__, "message": str(exc), "retryable": retryable}),
            err=True,
        )
    else:
        click.secho(f"error: {exc}", fg="red", err=True)
    sys.exit(code)


def handle_errors(func: F) -> F:
    """Turn :class:`LakehouseError` into a clean message and exit code (no traceback)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except LakehouseError as exc:
            fail(exc, bool(kwargs.get("json_output")))

    return wrapper  # type: ignore[return-value]


def duration_type(text: str) -> timedelta:
    from lakehouse.durations import parse_duration

    try:
        return parse_duration(text)
    except UsageError as exc:
        raise click.BadParameter(str(exc)) from exc


class Duration(click.ParamType):  # type: ignore[type-arg]  # generic only in newer click
    """A click parameter for ``0s``, ``30m``, ``6h``, ``5d``."""

    name = "duration"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> timedelta:
        if isinstance(value, timedelta):
            return value
        try:
            from lakehouse.durations import parse_duration

            return parse_duration(str(value))
        except UsageError as exc:
            self.fail(str(exc), param, ctx)
