"""moto in server mode on 127.0.0.1: S3, Glue and Athena's API on one port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.components import free_port

REGION = "us-east-1"
ACCESS_KEY = "testing"
SECRET_KEY = "testing-secret"


class MotoUnavailable(RuntimeError):
    pass


@dataclass(frozen=True)
class MotoServer:
    endpoint: str
    port: int
    region: str = REGION

    def client(self, service: str):  # type: ignore[no-untyped-def]
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )

    def s3_properties(self) -> dict[str, str]:
        """pyiceberg ``s3.*`` properties pointing at this server."""
        return {
            "s3.endpoint": self.endpoint,
            "s3.region": self.region,
            "s3.access-key-id": ACCESS_KEY,
            "s3.secret-access-key": SECRET_KEY,
            "s3.path-style-access": "true",
        }

    def glue_properties(self) -> dict[str, str]:
        return {
            "glue.endpoint": self.endpoint,
            "glue.region": self.region,
            "glue.access-key-id": ACCESS_KEY,
            "glue.secret-access-key": SECRET_KEY,
        }

    def reset(self) -> None:
        """Forget every bucket, table and query (moto's reset API)."""
        import urllib.request

        urllib.request.urlopen(
            urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST"), timeout=10
        ).read()


@contextmanager
def running_moto(module: str = "moto.server") -> Iterator[MotoServer]:
    """A moto server on a free port; ``module`` is run with ``python -m`` (a wrapper
    that adjusts moto before starting its server may stand in for ``moto.server``)."""
    port = free_port()
    env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
    # The server logs every request: send that to a file, never to an unread pipe (a
    # full pipe blocks the server).
    log = tempfile.NamedTemporaryFile(prefix="moto-", suffix=".log", delete=False)  # noqa: SIM115 (closed below)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", module, "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    except OSError as exc:
        raise MotoUnavailable(f"cannot start moto_server: {exc}") from exc
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            err = Path(log.name).read_text(errors="replace")
            raise MotoUnavailable(f"moto_server exited with {proc.returncode}: {err[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise MotoUnavailable("moto_server did not listen within 30 s") from None
            time.sleep(0.1)
    try:
        yield MotoServer(f"http://127.0.0.1:{port}", port)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        Path(log.name).unlink(missing_ok=True)
