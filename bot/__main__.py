"""`python -m bot` (the Procfile's `web`): Socket Mode when SLACK_APP_TOKEN is set (no public
URL needed), else HTTP on $PORT (default 3000) at /slack/events."""

from __future__ import annotations

import logging
import os

from bot.app import build_app
from bot.server import PATH, make_server
from health.settings import get_settings


def main(port: int | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = get_settings()
    app = build_app(settings)
    if settings.slack_app_token is not None:
        from slack_bolt.adapter.socket_mode import SocketModeHandler

        SocketModeHandler(app, settings.slack_app_token.get_secret_value()).start()
        return
    port = port or int(os.environ.get("PORT", "3000"))
    server = make_server(app, port=port)
    logging.info("healthbot Slack app on http://0.0.0.0:%d%s", port, PATH)
    server.serve_forever()


if __name__ == "__main__":
    main()
