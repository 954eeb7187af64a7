"""`respond()` over kept-alive connections. Bolt's own posts each answer to a response_url
through slack_sdk's WebhookClient (urllib: a new connection, and a TLS handshake with Slack,
per answer). Every listener gets this one instead, the same call and the same message,
posted through one connection pool the app keeps (REQUESTS_CA_BUNDLE and proxies from the
environment honoured, as for every other HTTPS client here)."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from typing import Any
from urllib.request import getproxies

import requests
from requests.adapters import HTTPAdapter
from slack_bolt import App
from slack_bolt.context.respond import Respond
from slack_sdk.webhook import WebhookResponse
from urllib3.util.retry import Retry

log = logging.getLogger(__name__)
TIMEOUT = 30  # seconds, as WebhookClient's
HEADERS = {"Content-Type": "application/json;charset=utf-8"}


def http_session(*, pool: int) -> requests.Session:
    """Up to `pool` kept-alive connections per host (one per listener thread). A connection
    the far end closed while idle is retried once on a new one, as WebhookClient's
    connection-error handler retries. The environment (CA bundle, proxies) is read here, once:
    requests would read it again, and look for a .netrc, on every post."""
    session = requests.Session()
    session.trust_env = False
    env = os.environ
    session.verify = env.get("REQUESTS_CA_BUNDLE") or env.get("CURL_CA_BUNDLE") or True
    session.proxies = {k: v for k, v in getproxies().items() if k in ("http", "https")}
    retry = Retry(total=1, connect=1, read=1, status=0, other=0, allowed_methods=None)
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool, max_retries=retry)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def _dicts(items: Sequence[Any] | None) -> list[dict] | None:
    if not items:
        return None
    return [x.to_dict() if hasattr(x, "to_dict") else x for x in items]


class PooledRespond(Respond):
    """Bolt's `respond(text=..., blocks=..., response_type=..., replace_original=...)`."""

    def __init__(self, *, response_url: str, http: requests.Session):
        super().__init__(response_url=response_url)
        self.http = http

    def __call__(  # Bolt's signature
        self,
        text: str | dict = "",
        blocks: Sequence[Any] | None = None,
        attachments: Sequence[Any] | None = None,
        response_type: str | None = None,
        replace_original: bool | None = None,
        delete_original: bool | None = None,
        unfurl_links: bool | None = None,
        unfurl_media: bool | None = None,
        thread_ts: str | None = None,
        metadata: dict | None = None,
    ) -> WebhookResponse:
        if isinstance(text, dict):  # a whole message, as Bolt allows
            return self(**text)
        fields = {
            "blocks": _dicts(blocks),
            "attachments": _dicts(attachments),
            "response_type": response_type,
            "replace_original": replace_original,
            "delete_original": delete_original,
            "unfurl_links": unfurl_links,
            "unfurl_media": unfurl_media,
            "thread_ts": thread_ts,
            "metadata": metadata,
        }
        message = {"text": text} | {k: v for k, v in fields.items() if v is not None}
        url = str(self.response_url)
        resp = self.http.post(url, data=json.dumps(message), headers=HEADERS, timeout=TIMEOUT)
        if resp.status_code != 200:
            log.warning("response_url answered %d: %s", resp.status_code, resp.text[:200])
        return WebhookResponse(
            url=url, status_code=resp.status_code, body=resp.text, headers=dict(resp.headers)
        )


def register(app: App, *, pool: int) -> None:
    http = http_session(pool=pool)

    @app.middleware
    def respond_over_kept_alive_connections(context, next):  # noqa: A002 - Bolt's name
        if context.response_url:
            context["respond"] = PooledRespond(response_url=context.response_url, http=http)
        return next()
