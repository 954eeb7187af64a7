"""`python -m bot` (the Procfile's `web`): Socket Mode when SLACK_APP_TOKEN is set (no public
URL needed), else HTTP on $PORT (default 3000) at /slack/events, answered by
$WEB_CONCURRENCY processes (default 1)."""

from __future__ import annotations

import logging
import os
import sys

from bot.app import build_app, check_settings
from bot.delivery import SlackNotConfigured
from bot.server import PATH, listen, make_server, serve_processes
from health.settings import get_settings


class BadWorkers(ValueError):
    """WEB_CONCURRENCY is not a number of processes."""


def workers_from_env() -> int:
    raw = os.environ.get("WEB_CONCURRENCY", "1")
    try:
        workers = int(raw)
    except ValueError:
        workers = 0
    if workers < 1:
        raise BadWorkers(f"WEB_CONCURRENCY={raw!r}: set it to a whole number of processes, >= 1")
    return workers


def main(port: int | None = None, workers: int | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = get_settings()
    check_settings(settings)
    if settings.slack_app_token is not None:
        from slack_bolt.adapter.socket_mode import SocketModeHandler

        app = build_app(settings)
        SocketModeHandler(app, settings.slack_app_token.get_secret_value()).start()
        return
    port = port or int(os.environ.get("PORT", "3000"))
    workers = workers or workers_from_env()
    if workers == 1:
        server = make_server(build_app(settings), port=port)
        logging.info("healthbot Slack app on http://0.0.0.0:%d%s", port, PATH)
        server.serve_forever()
        return
    sock = listen("0.0.0.0", port)
    logging.info("healthbot Slack app on http://0.0.0.0:%d%s, %d processes", port, PATH, workers)
    sys.exit(serve_processes(lambda: build_app(settings), sock, workers))


if __name__ == "__main__":
    try:
        main()
    except (BadWorkers, SlackNotConfigured) as exc:
        sys.exit(f"healthbot: {exc}")
