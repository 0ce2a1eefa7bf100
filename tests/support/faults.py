"""An HTTP proxy in front of the emulator that injects S3 faults: throttling (503
SlowDown), server errors (500) and denied access (403), on chosen requests. Real
clients (pyarrow's AWS SDK, botocore) talk to it over 127.0.0.1, so their own retry
logic is what gets tested."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

_ERRORS = {
    503: ("SlowDown", "Please reduce your request rate."),
    500: ("InternalError", "We encountered an internal error. Please try again."),
    403: ("AccessDenied", "Access Denied"),
}


@dataclass
class FaultPlan:
    """Decides, per request, whether to fail it and with which status."""

    rule: Callable[[str, str, int], int | None] = lambda method, path, n: None
    requests: int = 0
    injected: dict[int, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def decide(self, method: str, path: str) -> int | None:
        with self.lock:
            self.requests += 1
            status = self.rule(method, path, self.requests)
            if status:
                self.injected[status] = self.injected.get(status, 0) + 1
            return status


def every_nth(
    n: int,
    status: int = 503,
    *,
    limit: int = 1_000_000,
    methods: tuple[str, ...] = ("GET", "PUT", "HEAD", "POST"),
) -> Callable[[str, str, int], int | None]:
    """Fail every n-th request with ``status``, at most ``limit`` times."""
    injected = [0]

    def rule(method: str, path: str, count: int) -> int | None:
        if method in methods and count % n == 0 and injected[0] < limit:
            injected[0] += 1
            return status
        return None

    return rule


@contextmanager
def fault_proxy(upstream: str, plan: FaultPlan) -> Iterator[str]:
    target = urlparse(upstream)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # quiet
            pass

        def _read_body(self) -> bytes:
            """The request body; HTTP chunked framing (the AWS SDK streams uploads that
            way) is removed, and the body forwarded with a Content-Length."""
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                parts = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass  # trailers
                        return b"".join(parts)
                    parts.append(self.rfile.read(size))
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _relay(self) -> None:
            body = self._read_body()
            status = plan.decide(self.command, self.path)
            if status:
                code, message = _ERRORS[status]
                payload = f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>{message}</Message></Error>'.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                return
            conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
            hop = {"host", "expect", "connection", "keep-alive", "transfer-encoding"}
            headers = {k: v for k, v in self.headers.items() if k.lower() not in hop}
            headers["Host"] = f"{target.hostname}:{target.port}"
            conn.request(self.command, self.path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
            self.send_response(response.status)
            for key, value in response.getheaders():
                if key.lower() not in {"transfer-encoding", "connection", "content-length"}:
                    self.send_header(key, value)
            # a HEAD response announces the object's size without sending it
            length = response.getheader("Content-Length") if self.command == "HEAD" else None
            self.send_header("Content-Length", length or str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
            conn.close()

        do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _relay

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
