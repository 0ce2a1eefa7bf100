"""Every command's exit codes and error output, handled once by the ``lakehouse`` group:
0 ok, 1 records rejected, 2 usage or configuration, 70 internal error, 75 transient.

In-process through click's runner (errors injected where a real one cannot be arranged),
then through the installed ``lakehouse`` entry point in a subprocess with real failures:
a closed catalog port, a corrupted ``metadata.json``."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from lakehouse.cli.main import cli
from lakehouse.errors import CommitError, ExitCode, StorageError, UsageError, exit_code_for
from lakehouse.settings import Settings


def _event(i: int, *, hour: int = 10) -> str:
    return json.dumps(
        {
            "event_id": f"e{i}",
            "user_id": f"u{i % 3}",
            "event_type": "view" if i % 2 else "purchase",
            "client_ts": f"2024-05-01T{hour:02d}:{i % 60:02d}:00Z",
        }
    )


def _zone(root: Path, *, good: int, bad: int) -> Path:
    root.mkdir(parents=True)
    # a bad line starts like an object (a file with no such line is one reject as a whole)
    lines = [_event(i) for i in range(good)] + [f"{{not json {i}" for i in range(bad)]
    (root / "a.ndjson").write_text("\n".join(lines) + "\n")
    return root


def _invoke(*args: str) -> click.testing.Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _one_json_line(text: str) -> dict[str, Any]:
    """``text`` is exactly one line holding one JSON object."""
    assert text.endswith("\n") and text.count("\n") == 1, repr(text)
    value = json.loads(text)
    assert isinstance(value, dict)
    return value


def _json_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found: list[tuple[str, ...]] = []
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            found += _json_commands(command, (*prefix, name))
        elif any(p.name == "json_output" for p in command.params):
            found.append((*prefix, name))
    return found


def _command(path: tuple[str, ...]) -> click.Command:
    command: click.Command = cli
    for name in path:
        assert isinstance(command, click.Group)
        command = command.commands[name]
    return command


def _required_args(command: click.Command) -> list[str]:
    """A placeholder for each required argument and option (never reached: the injected
    error comes first)."""
    args: list[str] = []
    for param in command.params:
        if not param.required:
            continue
        if isinstance(param, click.Option):
            args.append(param.opts[0])
        args.append("x")
    return args


JSON_COMMANDS = _json_commands(cli)
SETTINGS_COMMANDS = [c for c in JSON_COMMANDS if any(p.name == "home" for p in _command(c).params)]


def test_the_mapping_of_errors_to_exit_codes() -> None:
    assert [int(c) for c in ExitCode] == [0, 1, 2, 70, 75, 130]
    assert exit_code_for(UsageError("x")) == 2
    assert exit_code_for(StorageError("x")) == exit_code_for(CommitError("x")) == 75
    assert exit_code_for(RuntimeError("x")) == exit_code_for(KeyError("x")) == 70


def test_success_and_rejected_records(home: Path, tmp_path: Path) -> None:
    ok = _invoke("ingest", str(_zone(tmp_path / "good", good=6, bad=0)), "--create", "--json")
    assert ok.exit_code == 0, ok.output
    assert _one_json_line(ok.stdout)["records_written"] == 6 and ok.stderr == ""
    partial = _invoke("ingest", str(_zone(tmp_path / "bad", good=0, bad=2)), "--json")
    assert partial.exit_code == 1, partial.output
    summary = _one_json_line(partial.stdout)
    assert summary["records_rejected"] == 2 and summary["records_written"] == 0


def test_a_usage_error_found_by_the_parser_is_a_json_error_under_json(home: Path) -> None:
    missing = _invoke("funnel", "--json")
    assert missing.exit_code == 2 and missing.stdout == ""
    error = _one_json_line(missing.stderr)
    assert error == {
        "type": "MissingParameter",
        "message": "Missing option '--steps'.",
        "retryable": False,
        "exit_code": 2,
    }
    bad = _invoke("maintain", "run", "--json", "--snapshot-retention", "5 fortnights")
    assert bad.exit_code == 2 and _one_json_line(bad.stderr)["type"] == "BadParameter"
    unknown = _invoke("health", "--json", "--no-such-flag")
    assert unknown.exit_code == 2 and _one_json_line(unknown.stderr)["type"] == "NoSuchOption"
    # without --json click's own usage text stays
    text = _invoke("funnel")
    assert text.exit_code == 2 and "Usage: " in text.stderr and "Missing option" in text.stderr


def test_a_configuration_error_exits_2(home: Path) -> None:
    result = _invoke("health", "--catalog", "nosuch", "--json")
    assert result.exit_code == 2 and result.stdout == ""
    error = _one_json_line(result.stderr)
    assert error["type"] == "ConfigError" and error["exit_code"] == 2
    assert "PYICEBERG_CATALOG__NOSUCH__URI" in error["message"]
    text = _invoke("health", "--catalog", "nosuch")
    assert text.exit_code == 2 and text.stderr.startswith("error: catalog 'nosuch'")
    assert text.stderr.count("\n") == 1


@pytest.mark.parametrize("error", [StorageError, CommitError])
def test_storage_and_commit_failures_are_transient(
    home: Path, monkeypatch: pytest.MonkeyPatch, error: type[Exception]
) -> None:
    def unavailable(**kwargs: Any) -> Any:
        raise error("the warehouse bucket timed out")

    monkeypatch.setattr(Settings, "from_env", unavailable)
    result = _invoke("ingest", str(home), "--json")
    assert result.exit_code == 75, result.output
    assert _one_json_line(result.stderr) == {
        "type": error.__name__,
        "message": "the warehouse bucket timed out",
        "retryable": True,
        "exit_code": 75,
    }


# what pyarrow's S3 client raises when S3 is down (copied from a run against the moto
# server behind a proxy answering 503), and an OSError that is not about availability
_S3_DOWN = (
    "Could not open Parquet input source '<Buffer>': AWS Error SERVICE_UNAVAILABLE during "
    "GetObject operation: "
)


@pytest.mark.parametrize(
    ("raised", "code", "kind"),
    [
        (OSError(_S3_DOWN), 75, "StorageError"),
        (
            OSError("AWS Error SLOW_DOWN during HeadObject operation: Please reduce"),
            75,
            "StorageError",
        ),
        (OSError("Couldn't deserialize thrift: TProtocolException: Invalid data"), 70, "OSError"),
    ],
)
def test_a_raw_storage_oserror_is_transient_only_when_storage_was_unavailable(
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    raised: OSError,
    code: int,
    kind: str,
) -> None:
    def failing(**kwargs: Any) -> Any:
        raise raised

    monkeypatch.setattr(Settings, "from_env", failing)
    result = _invoke("health", "--json")
    assert result.exit_code == code, result.output
    error = _one_json_line(result.stderr)
    assert error["exit_code"] == code and error["retryable"] is (code == 75)
    assert error["type"] == kind, error


def test_ctrl_c_exits_130_not_the_rejected_records_code(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(**kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(Settings, "from_env", interrupted)
    result = _invoke("health")
    assert result.exit_code == 130 and result.stdout == ""
    assert result.stderr == "error: interrupted\n"


def test_an_unreachable_catalog_exits_75(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _closed_port_catalog(monkeypatch.setenv, home)
    result = _invoke("health", "--json")
    assert result.exit_code == 75 and result.stdout == ""
    error = _one_json_line(result.stderr)
    assert error["type"] == "CatalogUnavailable" and error["exit_code"] == 75
    assert error["retryable"] is True and "secret-pw" not in result.stderr


def _inject_internal_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(**kwargs: Any) -> Any:
        raise RuntimeError("injected: the settings\nbroke")

    monkeypatch.setattr(Settings, "from_env", broken)


def test_an_internal_error_is_one_line_and_exit_70(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _inject_internal_error(monkeypatch)
    result = _invoke("health")
    assert result.exit_code == 70 and result.stdout == ""
    assert result.stderr == (
        "error: internal error: RuntimeError: injected: the settings broke; "
        "run with -v for the traceback\n"
    )
    verbose = _invoke("-v", "health")
    assert verbose.exit_code == 70
    assert "Traceback (most recent call last):" in verbose.stderr
    assert verbose.stderr.splitlines()[-1] == (
        "error: internal error: RuntimeError: injected: the settings broke"
    )


def test_every_json_command_lists_the_exit_codes_in_its_help() -> None:
    assert len(JSON_COMMANDS) >= 12, JSON_COMMANDS
    for path in [(), *JSON_COMMANDS, ("maintain",), ("config",)]:
        help_text = _invoke(*path, "--help").stdout
        assert "Exit codes (the same for every command):" in help_text, path
        assert "70  internal error" in help_text and "75  transient" in help_text, path


@pytest.mark.parametrize("path", SETTINGS_COMMANDS, ids=" ".join)
def test_every_json_command_reports_an_internal_error_as_one_json_line(
    home: Path, monkeypatch: pytest.MonkeyPatch, path: tuple[str, ...]
) -> None:
    _inject_internal_error(monkeypatch)
    result = _invoke(*path, *_required_args(_command(path)), "--json")
    assert result.exit_code == 70, result.output
    assert result.stdout == ""
    assert _one_json_line(result.stderr) == {
        "type": "RuntimeError",
        "message": "injected: the settings broke",
        "retryable": False,
        "exit_code": 70,
    }


# --- through the installed entry point, with real failures -----------------------------


def _lakehouse_exe() -> str:
    exe = Path(sys.executable).with_name("lakehouse")
    assert exe.exists(), f"the project is not installed in {sys.prefix}: no {exe}"
    return str(exe)


def _closed_port_catalog(setenv: Any, home: Path) -> None:
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    setenv("LAKEHOUSE_CATALOG", "pg")
    setenv("PYICEBERG_CATALOG__PG__TYPE", "sql")
    setenv(
        "PYICEBERG_CATALOG__PG__URI", f"postgresql+psycopg2://lake:secret-pw@127.0.0.1:{port}/db"
    )
    setenv("PYICEBERG_CATALOG__PG__WAREHOUSE", (home / "w").as_uri())


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_lakehouse_exe(), *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_exit_codes_of_the_installed_command(home: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAKEHOUSE_", "PYICEBERG_"))}
    env["LAKEHOUSE_HOME"] = str(home)

    init = _run(env, "init", "--json")
    assert init.returncode == 0, init.stderr
    assert "analytics.events" in _one_json_line(init.stdout)["created"]

    zone = _zone(tmp_path / "zone", good=5, bad=1)
    rejects = _run(env, "ingest", str(zone), "--json")
    assert rejects.returncode == 1, rejects.stderr
    summary = _one_json_line(rejects.stdout)
    assert (summary["records_written"], summary["records_rejected"]) == (5, 1)

    usage = _run(env, "funnel", "--window", "1h", "--json")
    assert usage.returncode == 2 and usage.stdout == ""
    assert _one_json_line(usage.stderr)["type"] == "MissingParameter"

    config = _run(env, "health", "--table", "x;drop", "--json")
    assert config.returncode == 2 and _one_json_line(config.stderr)["exit_code"] == 2

    down = dict(env)
    _closed_port_catalog(down.__setitem__, home)
    unavailable = _run(down, "ingest", str(zone), "--json")
    assert unavailable.returncode == 75, unavailable.stderr
    error = _one_json_line(unavailable.stderr)
    assert error["type"] == "CatalogUnavailable" and error["exit_code"] == 75
    assert "secret-pw" not in unavailable.stderr

    # A real unexpected failure: the table's current metadata.json is truncated on disk.
    metadata = sorted((home / "warehouse" / "analytics" / "events" / "metadata").glob("*.json"))
    metadata[-1].write_text('{"format-version": 2, "table-uuid": ')
    broken = _run(env, "health", "--json")
    assert broken.returncode == 70, broken.stderr
    assert broken.stdout == "" and "Traceback" not in broken.stderr
    record = _one_json_line(broken.stderr)
    assert record["exit_code"] == 70 and record["retryable"] is False
    text = _run(env, "health")
    assert text.returncode == 70 and text.stderr.count("\n") == 1
    assert text.stderr.startswith("error: internal error: ") and "-v" in text.stderr
    verbose = _run(env, "-v", "health")
    assert verbose.returncode == 70 and "Traceback (most recent call last)" in verbose.stderr


def test_ctrl_c_of_the_installed_command_exits_130(home: Path) -> None:
    """A real SIGINT in the middle of a long one-shot command (a big demo load)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAKEHOUSE_", "PYICEBERG_"))}
    env["LAKEHOUSE_HOME"] = str(home)
    proc = subprocess.Popen(
        [_lakehouse_exe(), "demo", "--events", "50000000"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(8)  # past the imports and the table's creation, into the load
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert stderr.rstrip().splitlines()[-1] == "error: interrupted"
    assert "Traceback" not in stderr
