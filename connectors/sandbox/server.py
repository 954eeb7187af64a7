"""A small threaded HTTP(S) server on loopback that the vendor fakes plug a router into.

It records every request (so tests count API calls per endpoint) and injects faults on demand
(rate limits, 5xx, slow responses, expired tokens) before the router sees the request; the
vendor fake supplies the vendor's own error body for each fault.
"""

from __future__ import annotations

import json
import ssl
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

FAULT_KINDS = ("rate_limit", "server_error", "slow", "slow_answer", "expired_token", "malformed")


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default


@dataclass
class Response:
    status: int = 200
    body: Any = None  # dict/list -> JSON; bytes/str sent as they are
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Fault:
    kind: str  # one of FAULT_KINDS
    path_contains: str = ""
    times: int = 1  # how many matching requests it hits
    retry_after: float | None = 1  # seconds, sent as Retry-After on a rate limit
    delay: float = 0.0  # seconds: "slow" waits before handling, "slow_answer" after (the
    # request is applied, its answer is late: a client that gives up never learns it landed)

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {self.kind!r}; use one of {FAULT_KINDS}")


Router = Callable[[Request], Response]
FaultBody = Callable[[Fault, Request], Response]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # a burst of clients connecting at once waits in the backlog, as at the vendor; with
    # socketserver's default of 5 the kernel drops the rest's SYNs and they retry after 1 s
    request_queue_size = 128

    def handle_error(self, request, client_address) -> None:
        """A client that hangs up mid-answer (a killed worker, a timeout) is not news."""
        if not isinstance(sys.exc_info()[1], ConnectionError | ssl.SSLError):
            super().handle_error(request, client_address)


class SandboxServer:
    """Serve `router` on 127.0.0.1 (a free port), over TLS when given an SSL context."""

    def __init__(
        self,
        router: Router,
        fault_response: FaultBody,
        *,
        ssl_context: ssl.SSLContext | None = None,
    ):
        self.router = router
        self.fault_response = fault_response
        self.requests: list[Request] = []
        self.faults: list[Fault] = []
        self._lock = threading.Lock()
        self._httpd = _Server(("127.0.0.1", 0), self._handler_class())
        if ssl_context is not None:
            self._httpd.socket = ssl_context.wrap_socket(self._httpd.socket, server_side=True)
        scheme = "https" if ssl_context else "http"
        self.url = f"{scheme}://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread: threading.Thread | None = None

    def start(self) -> SandboxServer:
        # a short poll interval makes stop() quick; tests start and stop many servers
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def inject(self, *faults: Fault) -> None:
        with self._lock:
            self.faults.extend(faults)

    def count(self, method: str | None = None, path_contains: str = "") -> int:
        return sum(
            1
            for r in self.requests
            if (method is None or r.method == method) and path_contains in r.path
        )

    def reset_counts(self) -> None:
        with self._lock:
            self.requests.clear()

    def _take_fault(self, req: Request) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.path_contains in req.path and fault.times > 0:
                    fault.times -= 1
                    if fault.times == 0:
                        self.faults.remove(fault)
                    return fault
        return None

    def _dispatch(self, req: Request) -> Response:
        with self._lock:
            self.requests.append(req)
        fault = self._take_fault(req)
        if fault is not None:
            if fault.kind == "slow":
                time.sleep(fault.delay)
            elif fault.kind != "slow_answer":
                return self.fault_response(fault, req)
        try:
            resp = self.router(req)
        except Exception as exc:  # a bug in the fake must show up as a 500, not a hang
            resp = Response(500, {"error": f"sandbox bug: {exc!r}"})
        if fault is not None and fault.kind == "slow_answer":
            time.sleep(fault.delay)
        return resp

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # headers and body go out in two writes: without this, Nagle + delayed ACK
            # add ~40 ms to every request
            disable_nagle_algorithm = True

            def log_message(self, *args: object) -> None:
                pass

            def _handle(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                req = Request(
                    self.command,
                    parts.path,
                    parse_qs(parts.query),
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length) if length else b"",
                )
                resp = server._dispatch(req)
                body = resp.body
                headers = dict(resp.headers)
                if isinstance(body, dict | list):
                    body = json.dumps(body).encode()
                    headers.setdefault("Content-Type", "application/json;charset=UTF-8")
                elif isinstance(body, str):
                    body = body.encode()
                body = body or b""
                self.send_response(resp.status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = do_HEAD = _handle

        return Handler
