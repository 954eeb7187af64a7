"""Zendesk Support REST API over plain `requests`: the only module here that speaks HTTP.

Auth is an API token (`{email}/token:{api_token}` basic auth). Every request is counted in
`api_calls`. Rate limits (429) are retried after the server's `Retry-After`; 5xx, timeouts and
connection errors are retried with exponential backoff and jitter; both are bounded, after
which a `TransientConnectorError` (carrying `retry_after`) lets the worker retry the run later.
401/403 raise `AuthConnectorError` naming the variables to fix; other 4xx are permanent.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable
from typing import Any

import requests

from connectors.base import AuthConnectorError, PermanentConnectorError, TransientConnectorError

EXPORT_PATH = "/api/v2/incremental/tickets/cursor.json"
SHOW_ORGS_PATH = "/api/v2/organizations/show_many.json"
EXPORT_PAGE_MAX = 1000  # tickets per incremental export page (VENDORS.md)
SHOW_MANY_MAX = 100  # ids per show_many request


class ZendeskClient:
    def __init__(
        self,
        base_url: str,
        email: str,
        api_token: str,
        *,
        timeout: float = 30.0,
        max_retries: int = 5,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
        max_retry_after: float = 120.0,
        sleep: Callable[[float], None] = time.sleep,
        session: requests.Session | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_retry_after = max_retry_after
        self.sleep = sleep
        self.api_calls = 0
        self.session = session or requests.Session()
        self.session.auth = (f"{email}/token", api_token)
        self.session.headers.update({"Accept": "application/json"})

    # -- endpoints -------------------------------------------------------------------------

    def export_tickets(
        self,
        *,
        cursor: str | None = None,
        start_time: int = 0,
        per_page: int = EXPORT_PAGE_MAX,
        include: Iterable[str] = ("organizations", "metric_sets"),
    ) -> dict[str, Any]:
        """One page of the cursor-based incremental ticket export."""
        params: dict[str, Any] = {"per_page": min(per_page, EXPORT_PAGE_MAX)}
        if cursor:
            params["cursor"] = cursor
        else:
            params["start_time"] = start_time
        if include := ",".join(include):
            params["include"] = include
        page = self.get(EXPORT_PATH, params)
        if not isinstance(page.get("tickets"), list):
            raise TransientConnectorError("Zendesk export page without a 'tickets' list")
        return page

    def show_organizations(self, ids: Iterable[int]) -> list[dict[str, Any]]:
        """Organizations by id, `SHOW_MANY_MAX` per request; unknown ids are simply absent."""
        wanted = sorted(set(ids))
        found: list[dict[str, Any]] = []
        for i in range(0, len(wanted), SHOW_MANY_MAX):
            part = ",".join(str(x) for x in wanted[i : i + SHOW_MANY_MAX])
            found.extend(self.get(SHOW_ORGS_PATH, {"ids": part}).get("organizations") or [])
        return found

    # -- transport -------------------------------------------------------------------------

    def get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        url = path if path.startswith("http") else self.base_url + path
        retry_after: float | None = None
        for attempt in range(self.max_retries + 1):
            self.api_calls += 1
            try:
                resp = self.session.get(url, params=params, timeout=self.timeout)
            except (requests.Timeout, requests.ConnectionError) as exc:
                problem, wait = f"{type(exc).__name__} calling {path}", self._backoff(attempt)
            else:
                status = resp.status_code
                if status == 429:
                    retry_after = _retry_after(resp) or self._backoff(attempt)
                    problem, wait = f"rate limited (429) on {path}", retry_after
                    if retry_after > self.max_retry_after:
                        raise TransientConnectorError(problem, retry_after=retry_after)
                elif status >= 500:
                    retry_after = _retry_after(resp)
                    problem = f"Zendesk {status} on {path}: {_describe(resp)}"
                    wait = max(retry_after or 0.0, self._backoff(attempt))
                elif status in (401, 403):
                    raise AuthConnectorError(
                        f"Zendesk rejected the credentials ({status}: {_describe(resp)}); "
                        "check ZENDESK_EMAIL and ZENDESK_API_TOKEN (the token must belong to an "
                        "admin for incremental exports) and ZENDESK_BASE_URL"
                    )
                elif status >= 400:
                    raise PermanentConnectorError(f"Zendesk {status} on {path}: {_describe(resp)}")
                else:
                    try:
                        body = resp.json()
                    except ValueError:
                        problem, wait = f"unparsable JSON from {path}", self._backoff(attempt)
                    else:
                        if isinstance(body, dict):
                            return body
                        problem, wait = f"unexpected JSON from {path}", self._backoff(attempt)
            if attempt == self.max_retries:
                raise TransientConnectorError(
                    f"{problem}; gave up after {attempt + 1} attempts", retry_after=retry_after
                )
            self.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def _backoff(self, attempt: int) -> float:
        base = min(self.max_backoff, self.backoff * 2**attempt)
        return base / 2 + random.uniform(0, base / 2)  # noqa: S311 - jitter, not crypto


def _retry_after(resp: requests.Response) -> float | None:
    value = resp.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _describe(resp: requests.Response) -> str:
    """Zendesk's error body: {"error": "RecordNotFound", "description": "..."} or a string."""
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:200] or resp.reason
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):  # some endpoints nest {"title", "message"}
            err = err.get("title") or err.get("message")
        desc = body.get("description") or body.get("message") or ""
        return ": ".join(str(x) for x in (err, desc) if x) or str(body)[:200]
    return str(body)[:200]
