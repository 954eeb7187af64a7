"""The one module that imports the `stripe` library: a StripeClient pointed at STRIPE_BASE_URL,
lists read with the library's auto-paging (`limit=100`), and the project's retry policy.

The library's own retries are off (`max_network_retries=0`); every HTTP request goes through
`RetryingHttpClient`, which counts it and retries a 429 (waiting Retry-After when Stripe sends
it, else an exponential backoff with jitter), a 5xx or a connection failure a few times within
the call. When that is not enough (or Retry-After is longer than a short in-call wait) the
library's error becomes TransientConnectorError carrying Retry-After, and the task layer tries
again later; a rejected key is AuthConnectorError naming STRIPE_API_KEY, a bad request
PermanentConnectorError.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import stripe

from connectors.base import AuthConnectorError, PermanentConnectorError, TransientConnectorError

PAGE = 100  # Stripe's largest list page
DEFAULT_BASE_URL = "https://api.stripe.com"


class RetryingHttpClient(stripe.RequestsClient):
    def __init__(
        self,
        *,
        timeout: float = 30.0,
        max_retries: int = 3,
        backoff: float = 0.5,
        max_sleep: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
    ):
        super().__init__(timeout=timeout)
        self.max_retries, self.backoff, self.max_sleep = max_retries, backoff, max_sleep
        self.sleep = sleep
        self.calls = 0
        self.sleeps: list[float] = []

    def _pause(self, attempt: int, retry_after: float | None) -> None:
        wait = retry_after
        if wait is None:
            wait = min(self.max_sleep, self.backoff * 2**attempt) * random.uniform(0.5, 1.0)
        self.sleeps.append(wait)
        self.sleep(wait)

    def request(self, method: str, url: str, headers: Mapping[str, str] | None, post_data=None):
        for attempt in range(self.max_retries + 1):
            last = attempt == self.max_retries
            self.calls += 1
            try:
                content, status, rheaders = super().request(method, url, headers, post_data)
            except stripe.APIConnectionError:
                if last:
                    raise
                self._pause(attempt, None)
                continue
            if status == 429 or status >= 500:
                wait = retry_after(rheaders)
                if not last and (wait is None or wait <= self.max_sleep):
                    self._pause(attempt, wait)
                    continue
            return content, status, rheaders
        raise AssertionError("unreachable")  # pragma: no cover


def retry_after(headers: Mapping[str, str] | None) -> float | None:
    try:
        return max(0.0, float((headers or {})["Retry-After"]))
    except (KeyError, ValueError, TypeError):
        return None


class StripeApi:
    def __init__(self, api_key: str, base_url: str = DEFAULT_BASE_URL, **http_opts: Any):
        self.http = RetryingHttpClient(**http_opts)
        self.client = stripe.StripeClient(
            api_key,
            base_addresses={"api": base_url.rstrip("/")},
            max_network_retries=0,
            http_client=self.http,
        )

    @property
    def api_calls(self) -> int:
        return self.http.calls

    def pages(self, resource: str, params: dict | None = None) -> Iterator[list[dict]]:
        """Every object of a list endpoint (customers, subscriptions, invoices, charges,
        events), newest first, in lists of up to 100 (one request each)."""
        service = getattr(self.client.v1, resource)
        page: list[dict] = []
        try:
            for obj in service.list(params={**(params or {}), "limit": PAGE}).auto_paging_iter():
                page.append(obj.to_dict())
                if len(page) == PAGE:
                    yield page
                    page = []
        except stripe.StripeError as exc:
            raise map_error(exc, resource) from exc
        if page:
            yield page

    def newest(self, resource: str, params: dict | None = None) -> dict | None:
        """The newest object of a list (one request)."""
        try:
            found = getattr(self.client.v1, resource).list(params={**(params or {}), "limit": 1})
        except stripe.StripeError as exc:
            raise map_error(exc, resource) from exc
        return found.data[0].to_dict() if found.data else None


def map_error(exc: stripe.StripeError, resource: str) -> Exception:
    what = f"Stripe {resource} list: {exc.user_message or exc}"
    if isinstance(exc, stripe.AuthenticationError | stripe.PermissionError):
        return AuthConnectorError(f"{what}; set STRIPE_API_KEY to a valid secret or restricted key")
    if isinstance(exc, stripe.RateLimitError | stripe.APIConnectionError) or (
        exc.http_status is not None and exc.http_status >= 500
    ):
        return TransientConnectorError(what, retry_after=retry_after(exc.headers))
    return PermanentConnectorError(what)
