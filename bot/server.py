"""Serve a Bolt app over HTTP at /slack/events (a threaded http.server: each request on its
own thread, Bolt's listeners on its executor)."""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from slack_bolt import App
from slack_bolt.request import BoltRequest

PATH = "/slack/events"


def make_server(app: App, host: str = "0.0.0.0", port: int = 3000) -> ThreadingHTTPServer:
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

    server = _Server((host, port), Handler)
    return server


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # a burst of Slack requests waits in the backlog, not refused
