"""The ``lakehouse`` command group: one place that turns every error into an exit code
and one line on stderr, the same for every command.

Exit codes (:class:`lakehouse.errors.ExitCode`): 0 ok, 1 some records rejected or
problems found, 2 usage or configuration error, 70 internal error (an unexpected
exception: a bug), 75 transient (catalog or storage unavailable: run again later).

Errors always go to stderr, so stdout holds only results. A known error prints
``error: <message>``; an internal one prints one line too, with its traceback only under
``-v``. When ``--json`` is on the command line, the error is instead one JSON line:
``{"type": ..., "message": ..., "retryable": ..., "exit_code": ...}``.
"""

from __future__ import annotations

import errno
import json
import traceback
from typing import Any

import click

from lakehouse.errors import ExitCode, LakehouseError, exit_code_for

EXIT_CODES_HELP = """\b
Exit codes (the same for every command):
  0   ok
  1   ran, but some records were rejected or problems were found
  2   usage or configuration error
  70  internal error (a bug): one line on stderr, the traceback with -v
  75  transient: the catalog or storage is unavailable; run again later
  130 interrupted (Ctrl-C); what was committed stays, a re-run goes on from there
Errors go to stderr; under --json as one JSON line {"type", "message", "retryable",
"exit_code"}. Results under --json are one JSON line each (indented on a terminal or
with --pretty)."""

_ARGS_KEY = "lakehouse-cli.args"


def with_exit_codes_help(command: click.Command) -> None:
    """Give ``command`` (and, for a group, every command under it) the shared epilog."""
    if not command.epilog:
        command.epilog = EXIT_CODES_HELP
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            with_exit_codes_help(sub)


def error_record(exc: BaseException, *, with_exit_code: bool = True) -> dict[str, Any]:
    """The JSON form of an error: ``type``, ``message`` (one line, secrets redacted),
    ``retryable`` and (unless not ``with_exit_code``) the ``exit_code`` it leads to."""
    record: dict[str, Any] = {
        "type": type(exc).__name__,
        "message": _one_line(exc),
        "retryable": bool(getattr(exc, "retryable", False)),
    }
    if with_exit_code:
        record["exit_code"] = int(_exit_code(exc))
    return record


def report_error(exc: BaseException, *, json_output: bool, verbose: int = 0) -> int:
    """Print ``exc`` on stderr (one line; one JSON line with ``json_output``; the
    traceback first when it is unexpected and ``verbose``) and return its exit code."""
    code = _exit_code(exc)
    if code == ExitCode.INTERNAL and verbose:
        click.echo("".join(traceback.format_exception(exc)).rstrip(), err=True)
    if json_output:
        click.echo(json.dumps(error_record(exc), separators=(",", ":")), err=True)
    elif code == ExitCode.INTERNAL:
        hint = "" if verbose else "; run with -v for the traceback"
        click.secho(
            f"error: internal error: {type(exc).__name__}: {_one_line(exc)}{hint}",
            fg="red",
            err=True,
        )
    else:
        click.secho(f"error: {_one_line(exc)}", fg="red", err=True)
    return int(code)


class LakehouseGroup(click.Group):
    """A click group whose commands share one error handling and one help epilog."""

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        with_exit_codes_help(cmd)
        super().add_command(cmd, name)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if ctx.parent is None:  # the outermost group sees the whole command line
            ctx.meta[_ARGS_KEY] = list(args)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.exceptions.Exit:
            raise  # --help, ctx.exit(): click's own
        except (KeyboardInterrupt, click.Abort):  # Ctrl-C
            click.echo("error: interrupted", err=True)
            ctx.exit(ExitCode.INTERRUPTED)
        except click.ClickException as exc:  # a usage error found by click's parser
            if not _json_requested(ctx):
                raise  # click prints the usage and the error
            ctx.exit(report_error(exc, json_output=True))
        except LakehouseError as exc:
            ctx.exit(report_error(exc, json_output=_json_requested(ctx)))
        except OSError as exc:
            if exc.errno == errno.EPIPE:
                raise  # stdout closed by a pager or `head`: click's own
            from lakehouse.storage import transient_storage_error  # pyarrow: not at startup

            unavailable = transient_storage_error(exc)
            if unavailable is not None:  # S3 down or throttling: run again later (75)
                ctx.exit(report_error(unavailable, json_output=_json_requested(ctx)))
            ctx.exit(_internal(ctx, exc))
        except Exception as exc:  # anything else is a bug: one line, exit 70
            ctx.exit(_internal(ctx, exc))


def _internal(ctx: click.Context, exc: Exception) -> int:
    verbose = int(ctx.find_root().params.get("verbose") or 0)
    return report_error(exc, json_output=_json_requested(ctx), verbose=verbose)


def _json_requested(ctx: click.Context) -> bool:
    args: list[str] = ctx.meta.get(_ARGS_KEY, [])
    before_dashes = args[: args.index("--")] if "--" in args else args
    return "--json" in before_dashes


def _exit_code(exc: BaseException) -> ExitCode:
    if isinstance(exc, click.ClickException):
        return ExitCode.USAGE
    return exit_code_for(exc)


def _one_line(exc: BaseException) -> str:
    from lakehouse.redact import redact_text

    text = exc.format_message() if isinstance(exc, click.ClickException) else str(exc)
    return redact_text(" ".join(text.split()) or type(exc).__name__)
