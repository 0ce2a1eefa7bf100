"""Secrets never appear in output: ``config show`` (text and JSON), ``-vv`` logs of real
work (init, ingest, health, maintenance, funnel), and error messages (a catalog that
refuses connections, a malformed URI), with a PostgreSQL password in the catalog URI, an
S3 secret key and a session token configured; and, when the S3 emulator is available,
``-vv`` ingest and maintenance of a warehouse on S3 with a secret key.

Every secret is a fresh random string, so any occurrence in the captured output is a leak.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

from tests.reliability.harness import Figures, Target, run_lakehouse
from tests.reliability.landing import Zone, add_wave


def _secret(label: str) -> str:
    return f"{label}-{secrets.token_hex(8)}"


def _grep(proc: Any, values: list[str], what: str, figures: Figures) -> None:
    figures.hostile_cases += 1
    text = proc.stdout + proc.stderr
    for value in values:
        if value in text:
            line = next(ln for ln in text.splitlines() if value in ln)
            figures.violation(
                "invariant_breaks",
                f"secret leaked by `{what}`: {line.replace(value, '<SECRET>')[:240]}",
            )


def check_postgres_secrets(
    server: Any, workdir: Path, figures: Figures, *, database: str, short: bool = False
) -> None:
    """A password in the PostgreSQL URI, an S3 secret key and a session token in the
    catalog's configuration; real work with ``-vv``; failures with the same secrets."""
    from tests.reliability.harness import postgres_target

    s3_secret, token = _secret("s3secret"), _secret("token")
    # a password with the characters SQLAlchemy accepts but a URI splitter trips on
    marker = secrets.token_hex(8)
    password = f"pw{marker}/x#y?z:w%40v"
    base = postgres_target(server, workdir / "home", database, password=password)
    env = {
        **base.env,
        "PYICEBERG_CATALOG__PG__S3__SECRET_ACCESS_KEY": s3_secret,
        "PYICEBERG_CATALOG__PG__S3__SESSION_TOKEN": token,
        "PYICEBERG_CATALOG__PG__S3__ACCESS_KEY_ID": "AKIAEXAMPLE",
    }
    target = Target(base.home, env, "postgres")
    values = [marker, s3_secret, token]
    zone = Zone(workdir / "landing", 5, hours=2)
    add_wave(zone, files=2, per_file=50)
    logs = workdir / "logs"
    commands = [
        ["config", "show"], ["config", "show", "--json"], ["-vv", "init"],
        ["-vv", "ingest", str(zone.root), "--json"], ["-vv", "health"], ["-vv", "snapshots"],
        ["-vv", "maintain", "run", "--json"], ["-vv", "funnel", "--steps", "view,purchase"],
    ]  # fmt: skip
    for i, args in enumerate(commands):
        proc = run_lakehouse(args, target, logs, f"secret-{i}")
        # a command that failed did not print what its success prints: the check saw less
        if proc.popen.returncode not in (0, 1):
            figures.violation(
                "invariant_breaks",
                f"`lakehouse {' '.join(args[:3])}` exited {proc.popen.returncode}, so its output "
                f"was not checked: {proc.stderr.strip()[-200:]}",
            )
        _grep(
            proc, values, "lakehouse " + " ".join(a for a in args if not a.startswith("/")), figures
        )
    url = env["PYICEBERG_CATALOG__PG__URI"]
    closed = url.rsplit("@", 1)[0] + "@127.0.0.1:1/nowhere"
    broken = {
        "refused": closed,
        "bad port": url.rsplit("@", 1)[0] + "@127.0.0.1:notaport/db",
        "bad scheme": url.replace("postgresql+psycopg2", "postgresqlx", 1),
        "bad option": url + "?sslmode=nonsense",
    }
    for i, (label, uri) in enumerate(broken.items()):
        for args in (
            (["-vv", "init"],)
            if short
            else (["-vv", "init"], ["init", "--json"], ["config", "show"])
        ):
            proc = run_lakehouse(
                args, target, logs, f"secret-err-{i}-{args[-1]}", PYICEBERG_CATALOG__PG__URI=uri
            )
            _grep(proc, values, f"lakehouse {' '.join(args)} with a {label} URI", figures)


def check_s3_secrets(moto: Any, workdir: Path, figures: Figures) -> None:
    """The embedded catalog on an S3 warehouse (moto) with a secret key: ``-vv`` init,
    ingest from S3, maintenance and config show never print the secret."""
    secret = _secret("s3secret")
    client = moto.client("s3")
    bucket = f"lake-{secrets.token_hex(4)}"
    client.create_bucket(Bucket=bucket)
    zone = Zone(workdir / "landing", 6, hours=2)
    add_wave(zone, files=2, per_file=40, gz_rate=0.0)
    for path in zone.files:
        client.put_object(Bucket=bucket, Key=f"landing/{path.name}", Body=path.read_bytes())
    env = {
        "PYICEBERG_CATALOG__LAKEHOUSE__WAREHOUSE": f"s3://{bucket}/warehouse",
        "PYICEBERG_CATALOG__LAKEHOUSE__S3__ENDPOINT": moto.endpoint,
        "PYICEBERG_CATALOG__LAKEHOUSE__S3__REGION": moto.region,
        "PYICEBERG_CATALOG__LAKEHOUSE__S3__ACCESS_KEY_ID": "testing",
        "PYICEBERG_CATALOG__LAKEHOUSE__S3__SECRET_ACCESS_KEY": secret,
        "PYICEBERG_CATALOG__LAKEHOUSE__S3__PATH_STYLE_ACCESS": "true",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": secret,
    }
    target = Target(workdir / "home", env, "s3")
    commands = [
        ["config", "show", "--json"], ["-vv", "init"], ["-vv", "ingest", f"s3://{bucket}/landing/", "--json"],
        ["-vv", "maintain", "run", "--json"], ["-vv", "ingest", f"s3://{bucket}/missing/"],
    ]  # fmt: skip
    for i, args in enumerate(commands):
        proc = run_lakehouse(args, target, workdir / "logs", f"s3-{i}")
        if i == 2 and proc.popen.returncode in (0, 1):
            result = json.loads(proc.stdout)
            if result["records_written"] != len(zone.events):
                figures.violation(
                    "losses", f"S3 ingest wrote {result['records_written']} of {len(zone.events)}"
                )
        _grep(proc, [secret], "lakehouse " + " ".join(args), figures)
