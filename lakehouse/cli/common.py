"""What every command shares: settings flags and text/JSON output.

Errors and exit codes are handled once, by :class:`lakehouse.cli.group.LakehouseGroup`
(0 ok, 1 problems found, 2 usage or configuration, 70 internal error, 75 transient,
130 interrupted).
Under ``--json`` a command prints each result as one JSON line on stdout (indented on a
terminal or with ``--pretty``), so ``>> file.jsonl`` collects valid JSON lines.
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
from lakehouse.errors import ExitCode, UsageError
from lakehouse.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK = ExitCode.OK
EXIT_PROBLEMS = ExitCode.PROBLEMS
EXIT_USAGE = ExitCode.USAGE
EXIT_INTERNAL = ExitCode.INTERNAL
EXIT_UNAVAILABLE = ExitCode.UNAVAILABLE

_PRETTY_KEY = "lakehouse-cli.pretty"


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
        settings = Settings.from_env(home=str(home) if home else None, catalog=catalog, table=table)
        return func(*args, settings=settings, **kwargs)

    return wrapper  # type: ignore[return-value]


def _remember_pretty(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        ctx.meta[_PRETTY_KEY] = True


def json_option(func: F) -> F:
    """``--json`` (passed as ``json_output``) and ``--pretty`` (read by :func:`print_json`)."""
    func = click.option(
        "--pretty",
        is_flag=True,
        expose_value=False,
        callback=_remember_pretty,
        help="With --json: indent the JSON (the default on a terminal).",
    )(func)
    return click.option(
        "--json",
        "json_output",
        is_flag=True,
        help="Print the result as JSON: one line per result.",
    )(func)


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


def json_text(value: Any, *, pretty: bool = False) -> str:
    """``value`` as JSON: one line, or indented when ``pretty``."""
    if pretty:
        return json.dumps(to_jsonable(value), indent=2)
    return json.dumps(to_jsonable(value), separators=(",", ":"))


def print_json(value: Any) -> None:
    """Print one result as one JSON line; indented on a terminal or with ``--pretty``."""
    ctx = click.get_current_context(silent=True)
    pretty = bool(ctx and ctx.meta.get(_PRETTY_KEY)) or sys.stdout.isatty()
    click.echo(json_text(value, pretty=pretty))


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
