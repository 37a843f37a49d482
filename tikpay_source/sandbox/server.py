"""Real HTTP servers on loopback that put the services' answers on the wire.

Standard-library ``ThreadingHTTPServer`` is enough: the sandbox serves one client's
traffic, and avoiding a web framework keeps the connector's test dependencies small.
Every request is recorded (method, path, status, headers received) so tests can check
what the client actually sent.
"""

from __future__ import annotations

import email.utils
import shutil
import socket
import sys
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from tikpay_source.sandbox.clock import SandboxClock
from tikpay_source.sandbox.responses import Response


class Service(Protocol):
    """What a server needs from the logic behind it."""

    def handle(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Response:
        """Answer one request; ``headers`` are keyed in lower case."""
        ...


class RequestLog:
    """A thread-safe append-only record of the requests a server answered."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[dict[str, Any]] = []

    def append(self, entry: dict[str, Any]) -> None:
        """Record one request."""
        with self._lock:
            self._entries.append(entry)

    def snapshot(self) -> list[dict[str, Any]]:
        """Copies of the entries so far, oldest first."""
        with self._lock:
            return [{**entry, "headers": dict(entry["headers"])} for entry in self._entries]


class SandboxHTTPServer(ThreadingHTTPServer):
    """A threading server that carries the service, clock and log its handlers use."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], service: Service, clock: SandboxClock, log: RequestLog, verbose: bool
    ) -> None:
        self.service = service
        self.clock = clock
        self.log = log
        self.verbose = verbose
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real clients and servers use
    server: SandboxHTTPServer
    server_version = "TikpaySandbox/1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes; don't wait 40 ms

    def __getattr__(self, name: str) -> Any:
        # Every method (even newer ones such as QUERY) reaches the service, which answers
        # 405 with Allow where the spec has no such operation, instead of http.server's 501.
        if name.startswith("do_"):
            return self._dispatch
        raise AttributeError(name)

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        response = self.server.service.handle(self.command, self.path, headers, body)
        self.server.log.append(
            {"method": self.command, "path": self.path, "status": response.status, "headers": headers}
        )
        try:
            self._send(response)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up; nothing to answer
            self.close_connection = True

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        headers = dict(response.headers)
        if response.file is None:
            headers["Content-Length"] = str(len(response.body))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command == "HEAD":
            return
        if response.drop_after is not None:
            if response.file is None:
                self.wfile.write(response.body[: response.drop_after])
            else:
                with response.file.open("rb") as fh:
                    self.wfile.write(fh.read(response.drop_after))
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)  # end the body short of Content-Length
        elif response.file is None:
            self.wfile.write(response.body)
        else:
            with response.file.open("rb") as fh:
                shutil.copyfileobj(fh, self.wfile, 1 << 16)

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The ``Date`` header on the sandbox clock, consistent with HTTP-date ``Retry-After``."""
        return email.utils.formatdate(
            self.server.clock.time() if timestamp is None else timestamp, usegmt=True
        )

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            sys.stderr.write(f"[tikpay-sandbox] {self.address_string()} {format % args}\n")


def start_server(server: SandboxHTTPServer) -> threading.Thread:
    """Serve ``server`` in a daemon thread; stop it with ``server.shutdown()``."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.name = f"tikpay-sandbox-{server.server_address[1]}"
    thread.start()
    return thread
