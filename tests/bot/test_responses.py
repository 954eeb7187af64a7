"""respond() posts Bolt's message shape to the response_url, answers after the first over the
same kept-alive connection."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from slack_sdk.models.blocks import MarkdownTextObject, SectionBlock

from bot.responses import PooledRespond, http_session


def test_answers_go_over_one_kept_alive_connection_in_bolts_message_shape():
    connections, posts = [], []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            connections.append(self.client_address)

        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            posts.append((self.path, self.headers["Content-Type"], json.loads(body)))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/commands/T1/r1"
        respond = PooledRespond(response_url=url, http=http_session(pool=4))
        block = SectionBlock(text=MarkdownTextObject(text="*Acme*"))
        first = respond(text="Acme", blocks=[block], response_type="ephemeral")
        respond(text="Picked", replace_original=True, blocks=[])
        respond({"text": "whole", "response_type": "in_channel"})
    finally:
        server.shutdown()
    assert first.status_code == 200 and first.body == "ok"
    assert len(posts) == 3 and len(connections) == 1
    assert {p[0] for p in posts} == {"/commands/T1/r1"}
    assert posts[0][1] == "application/json;charset=utf-8"
    assert [p[2] for p in posts] == [
        {"text": "Acme", "blocks": [block.to_dict()], "response_type": "ephemeral"},
        {"text": "Picked", "replace_original": True},  # no empty blocks, as Bolt drops them
        {"text": "whole", "response_type": "in_channel"},
    ]
