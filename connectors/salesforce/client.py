"""The one module that talks to Salesforce (simple-salesforce over a retrying requests.Session).

- Retries: 429 (+ Retry-After), 5xx and timeouts are retried inside the HTTP session with
  exponential backoff and jitter (bounded, waits of at most 10 s), so a lazily paged query
  survives a blip without restarting; after that, or when Salesforce asks for a longer wait,
  they surface as TransientConnectorError (with its Retry-After) for the task layer to retry.
- Salesforce itself answers an exhausted daily allocation with 403 REQUEST_LIMIT_EXCEEDED (no
  429, no Retry-After): that is a TransientConnectorError at once (retrying now cannot help).
- 401 INVALID_SESSION_ID -> AuthConnectorError naming SALESFORCE_ACCESS_TOKEN.
- Every HTTP attempt counts in `api_calls`.
"""

from __future__ import annotations

import csv
import io
import random
import time
from collections.abc import Callable, Iterator
from typing import Any

import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceError,
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceOperationError,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)

from connectors.base import AuthConnectorError, PermanentConnectorError, TransientConnectorError

DEFAULT_VERSION = "59.0"
MAX_BATCH = 2000  # Sforce-Query-Options batchSize: default and maximum
MIN_BATCH = 200


class RetryingSession(requests.Session):
    """A requests.Session that counts attempts and retries 429 / 5xx / timeouts."""

    def __init__(
        self,
        *,
        timeout: float = 60.0,
        max_retries: int = 4,
        backoff: float = 0.5,
        max_sleep: float = 10.0,  # a short in-call retry: a longer Retry-After is the task's
        sleep: Callable[[float], None] = time.sleep,
    ):
        super().__init__()
        self.timeout, self.max_retries, self.backoff = timeout, max_retries, backoff
        self.max_sleep, self.sleep = max_sleep, sleep
        self.calls = 0
        self.ca_bundle: str | None = None

    def _pause(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return retry_after
        return min(self.max_sleep, self.backoff * 2**attempt) * random.uniform(0.5, 1.0)

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        kwargs.setdefault("timeout", self.timeout)
        if self.ca_bundle:  # explicit, so a REQUESTS_CA_BUNDLE in the environment can't shadow it
            kwargs.setdefault("verify", self.ca_bundle)
        for attempt in range(self.max_retries + 1):
            last = attempt == self.max_retries
            self.calls += 1
            try:
                resp = super().request(method, url, *args, **kwargs)
            except requests.exceptions.SSLError as exc:
                raise PermanentConnectorError(
                    f"TLS failure talking to Salesforce ({_short(url)}): {exc}; for a private CA "
                    "set REQUESTS_CA_BUNDLE"
                ) from exc
            except (requests.Timeout, requests.ConnectionError) as exc:
                if last:
                    raise TransientConnectorError(
                        f"Salesforce did not answer {method} {_short(url)} after "
                        f"{attempt + 1} attempts: {exc.__class__.__name__}"
                    ) from exc
                self.sleep(self._pause(attempt, None))
                continue
            if resp.status_code == 429:
                retry_after = _retry_after(resp)
                if last or (retry_after is not None and retry_after > self.max_sleep):
                    raise TransientConnectorError(
                        f"Salesforce rate limit (429) on {_short(url)}", retry_after=retry_after
                    )
                self.sleep(self._pause(attempt, retry_after))
                continue
            if resp.status_code >= 500 and not last:
                self.sleep(self._pause(attempt, _retry_after(resp)))
                continue
            return resp
        raise AssertionError("unreachable")  # pragma: no cover


def _retry_after(resp: requests.Response) -> float | None:
    try:
        return max(0.0, float(resp.headers["Retry-After"]))
    except (KeyError, ValueError):
        return None


def _short(url: str) -> str:
    return url.split("?", 1)[0].split("/services/data/", 1)[-1]


def _error_text(exc: SalesforceError) -> tuple[str, str]:
    """(errorCode, message) from Salesforce's `[{"message", "errorCode"}]` error body."""
    content = exc.content
    if isinstance(content, list) and content and isinstance(content[0], dict):
        return str(content[0].get("errorCode", "")), str(content[0].get("message", ""))
    return "", str(content)[:300]


ID_CHUNK = 300  # ids per IN (...) list: keeps the GET URL well under Salesforce's 16 KB


def map_error(exc: Exception, what: str) -> Exception:
    """simple-salesforce / requests exception -> one of our three connector errors."""
    if isinstance(exc, SalesforceExpiredSession):
        code, msg = _error_text(exc)
        return AuthConnectorError(
            f"Salesforce rejected the session ({code or 401}: {msg}) during {what}; "
            "set SALESFORCE_ACCESS_TOKEN to a valid access token"
        )
    if isinstance(exc, SalesforceAuthenticationFailed):
        return AuthConnectorError(
            f"Salesforce login failed ({exc.code}: {exc.message}); check SALESFORCE_USERNAME, "
            "SALESFORCE_PASSWORD and SALESFORCE_SECURITY_TOKEN, or set SALESFORCE_ACCESS_TOKEN"
        )
    if isinstance(exc, SalesforceError):
        code, msg = _error_text(exc)
        detail = f"{what}: HTTP {exc.status} {code} {msg}".strip()
        if isinstance(exc, SalesforceRefusedRequest) and code == "REQUEST_LIMIT_EXCEEDED":
            return TransientConnectorError(f"Salesforce API limit reached during {detail}")
        if isinstance(exc, SalesforceGeneralError) and (exc.status == 429 or exc.status >= 500):
            return TransientConnectorError(f"Salesforce unavailable during {detail}")
        if isinstance(exc, SalesforceMalformedRequest | SalesforceResourceNotFound):
            return PermanentConnectorError(f"Salesforce refused {detail}")
        return PermanentConnectorError(f"Salesforce error during {detail}")
    if isinstance(exc, requests.RequestException):
        return TransientConnectorError(f"Salesforce request failed during {what}: {exc}")
    return exc


class SalesforceClient:
    def __init__(
        self,
        instance_url: str,
        access_token: str | None = None,
        *,
        username: str | None = None,
        password: str | None = None,
        security_token: str | None = None,
        domain: str = "login",
        version: str = DEFAULT_VERSION,
        ca_bundle: str | None = None,
        session: RetryingSession | None = None,
        batch_size: int = MAX_BATCH,
    ):
        if not access_token and not (username and password):
            raise PermanentConnectorError(
                "Salesforce needs SALESFORCE_ACCESS_TOKEN (or SALESFORCE_USERNAME and "
                "SALESFORCE_PASSWORD with SALESFORCE_SECURITY_TOKEN)"
            )
        self.session = session or RetryingSession()
        if ca_bundle:
            self.session.ca_bundle = ca_bundle
        self.batch_size = max(MIN_BATCH, min(MAX_BATCH, batch_size))
        self._args = dict(
            instance_url=instance_url.rstrip("/"),
            access_token=access_token,
            username=username,
            password=password,
            security_token=security_token,
            domain=domain,
            version=version,
        )
        self._sf: Salesforce | None = None

    @property
    def api_calls(self) -> int:
        return self.session.calls

    @property
    def sf(self) -> Salesforce:
        """Connect lazily: with an access token no request is made; a username/password login
        is one SOAP call to https://{domain}.salesforce.com (not emulated by the sandbox)."""
        if self._sf is None:
            a = self._args
            try:
                if a["access_token"]:
                    self._sf = Salesforce(
                        instance_url=a["instance_url"],
                        session_id=a["access_token"],
                        session=self.session,
                        version=a["version"],
                    )
                else:
                    self._sf = Salesforce(
                        username=a["username"],
                        password=a["password"],
                        security_token=a["security_token"] or "",
                        domain=a["domain"],
                        session=self.session,
                        version=a["version"],
                    )
            except Exception as exc:
                raise map_error(exc, "login") from exc
        return self._sf

    def describe(self, sobject: str) -> dict:
        try:
            return getattr(self.sf, sobject).describe()
        except Exception as exc:
            raise map_error(exc, f"describe of {sobject}") from exc

    def query_pages(self, soql: str, *, include_deleted: bool = False) -> Iterator[list[dict]]:
        """One list of records per REST page: query, then queryMore via nextRecordsUrl."""
        headers = {"Sforce-Query-Options": f"batchSize={self.batch_size}"}
        what = soql.split(" WHERE ", 1)[0][-60:]
        try:
            page = self.sf.query(soql, include_deleted=include_deleted, headers=headers)
        except Exception as exc:
            raise map_error(exc, f"query {what}") from exc
        while True:
            yield list(page["records"])
            if page.get("done", True):
                return
            try:
                page = self.sf.query_more(
                    page["nextRecordsUrl"], identifier_is_url=True, headers=headers
                )
            except Exception as exc:
                raise map_error(exc, f"queryMore {what}") from exc

    def query_all(self, soql: str, *, include_deleted: bool = False) -> list[dict]:
        """Every record of a (small) query, e.g. an aggregate, via query_all_iter."""
        try:
            return list(self.sf.query_all_iter(soql, include_deleted=include_deleted))
        except Exception as exc:
            raise map_error(exc, "query") from exc

    def restful(self, path: str, *, method: str = "GET", json: Any = None) -> Any:
        try:
            return self.sf.restful(path, method=method, json=json)
        except Exception as exc:
            raise map_error(exc, f"{method} {path}") from exc

    def bulk2_update(self, sobject: str, records: list[dict], *, wait: float = 2.0) -> list[dict]:
        """Bulk API 2.0 update: per job (one per ~100 MB of CSV) create, PUT the CSV, PATCH
        UploadComplete, poll (first after `wait` s, then ~`wait` s apart) and GET the job.
        Returns [{job_id, numberRecordsProcessed, numberRecordsFailed, numberRecordsTotal}]."""
        try:
            return getattr(self.sf.bulk2, sobject).update(records=records, wait=wait)
        except SalesforceOperationError as exc:  # job Failed / Aborted, or a refused upload
            raise PermanentConnectorError(f"Salesforce Bulk API 2.0 update failed: {exc}") from exc
        except Exception as exc:
            raise map_error(exc, f"Bulk API 2.0 update of {sobject}") from exc

    def bulk2_results(self, sobject: str, job_id: str, kind: str) -> list[dict[str, str]]:
        """A finished ingest job's `successful` / `failed` / `unprocessed` rows (one GET)."""
        try:
            bulk = getattr(self.sf.bulk2, sobject)
            text = getattr(bulk, f"get_{kind}_records")(job_id)
        except Exception as exc:
            raise map_error(exc, f"Bulk API 2.0 {kind} results of {job_id}") from exc
        return list(csv.DictReader(io.StringIO(text)))
