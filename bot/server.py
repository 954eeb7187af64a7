"""Serve a Bolt app over HTTP at /slack/events (a threaded http.server: each request on its
own thread, Bolt's listeners on its executor), in one process or several sharing one
listening socket (WEB_CONCURRENCY, as gunicorn and uvicorn read it): one Python process
answers on one core at a time, so a second process lets a burst of commands use two. A
kept-alive connection stays with the process that accepted it, so a few busy clients can
load one process more than another (bench/slack.py's 20 callers: more answers a second,
a longer slowest 1%; README)."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from slack_bolt import App
from slack_bolt.request import BoltRequest

PATH = "/slack/events"
BACKLOG = 128  # a burst of Slack requests waits in the backlog, not refused
log = logging.getLogger(__name__)


def make_server(
    app: App, host: str = "0.0.0.0", port: int = 3000, *, sock: socket.socket | None = None
) -> ThreadingHTTPServer:
    """A server for `app` on (host, port), or on `sock`, a socket already listening."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # no request lines (bodies carry ids)
            pass

        def do_POST(self) -> None:
            parts = urlsplit(self.path)
            if parts.path != PATH:
                return self._send(404, b"not found", {})
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            headers = {k.lower(): [v] for k, v in self.headers.items()}
            resp = app.dispatch(BoltRequest(body=body, query=parts.query, headers=headers))
            out = {k: v[0] if isinstance(v, list) else v for k, v in resp.headers.items()}
            self._send(resp.status, (resp.body or "").encode(), out)

        def _send(self, status: int, body: bytes, headers: dict) -> None:
            self.send_response(status)
            for k, v in headers.items():
                if k.lower() != "content-length":
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    if sock is None:
        return _Server((host, port), Handler)
    server = _Server(sock.getsockname()[:2], Handler, bind_and_activate=False)
    server.socket.close()
    server.socket = sock
    return server


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = BACKLOG


def listen(host: str, port: int) -> socket.socket:
    return socket.create_server((host, port), backlog=BACKLOG)


def serve_processes(build: Callable[[], App], sock: socket.socket, workers: int) -> int:
    """Fork `workers` processes that each build their own app (no database connection,
    pool or thread crosses the fork) and answer on `sock`. Returns when they have all
    exited: after SIGTERM or SIGINT (passed on to them), or when one dies (the others are
    stopped and the exit status says so, for the process manager to restart the lot)."""
    sock.setblocking(False)  # every worker wakes on a connection; the ones that lose the
    children: set[int] = set()  # accept go back to waiting (socketserver ignores OSError)
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:  # the worker
            status = 1
            try:
                make_server(build(), sock=sock).serve_forever()
                status = 0
            finally:
                os._exit(status)
        children.add(pid)
    stopping = False

    def stop(signum: int, _frame: object = None) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    failed = 0
    while children:
        pid, status = os.wait()
        children.discard(pid)
        if not stopping:
            log.error("worker %d exited (status %d): stopping the others", pid, status)
            failed = 1
            stop(signal.SIGTERM)
    return failed
