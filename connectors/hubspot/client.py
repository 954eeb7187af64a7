"""The one module that imports hubspot-api-client: calls, retries, error mapping, search paging.

- Points the real client at `HUBSPOT_BASE_URL` (`HubSpot(host=...)`), with urllib3's own
  retries switched off (`retry=False`) so the backoff below is the only one in force.
- Responses are read raw (`_preload_content=False`) and parsed as JSON: one malformed
  property never fails a whole page in the generated models, and paging 10,000 records
  stays fast. Request building, auth and HTTP status checks are still the library's.
- 429: honour Retry-After when sent (HubSpot documents none for API clients), otherwise
  exponential backoff with jitter; 5xx, 423, timeouts and connection errors likewise.
  A DAILY limit is not waited out: it raises TransientConnectorError at once.
- `scan()` walks a CRM search ordered by `hs_lastmodifieddate` (contacts: `lastmodifieddate`),
  optionally narrowed by extra filters, re-windowing past the 10,000-result cap, and reports
  a resumable cursor after every page.
- HTTPS: `ca_bundle` (from `REQUESTS_CA_BUNDLE`, which urllib3 itself ignores) is handed to
  the library as `ssl_ca_cert`; certifi's bundle is used when it is unset.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import urllib3
from hubspot import HubSpot
from hubspot.crm.associations.v4.exceptions import ApiException as AssocApiException
from hubspot.crm.objects.exceptions import ApiException
from hubspot.crm.owners.exceptions import ApiException as OwnersApiException
from hubspot.crm.properties.exceptions import ApiException as PropsApiException

from connectors.base import AuthConnectorError, PermanentConnectorError, TransientConnectorError
from connectors.hubspot.mapping import parse_datetime

LASTMOD = "hs_lastmodifieddate"
SEARCH_CAP = 10_000
SEARCH_LIMIT, BATCH_LIMIT, HISTORY_LIMIT, ASSOC_LIMIT = 200, 100, 50, 1000
NOT_IN_LIMIT = 100  # ids in one NOT_IN filter (HubSpot documents no limit: kept conservative)
TOKEN_VAR = "HUBSPOT_ACCESS_TOKEN"
# every generated sub-package has its own ApiException class
API_EXCEPTIONS = (ApiException, AssocApiException, OwnersApiException, PropsApiException)


@dataclass(frozen=True)
class Cursor:
    """Resume point of one object type: everything modified before `ts` (epoch ms) is done,
    and so are the records at exactly `ts` whose ids are in `ids`."""

    ts: int | None = None
    ids: tuple[str, ...] = ()

    def as_json(self) -> dict:
        return {"ts": self.ts, "ids": list(self.ids)}

    @classmethod
    def from_json(cls, data: dict | None) -> Cursor:
        data = data or {}
        return cls(data.get("ts"), tuple(str(i) for i in data.get("ids") or ()))


@dataclass
class HubSpotClient:
    access_token: str
    base_url: str = "https://api.hubapi.com"
    timeout: float = 30.0
    # a short in-call retry (1 + 2 + 4 s): a longer outage raises TransientConnectorError, and
    # the task layer retries later with its own backoff
    max_retries: int = 3
    backoff: float = 1.0  # first backoff in seconds, doubled per attempt
    max_backoff: float = 10.0
    sleep: Callable[[float], None] = time.sleep
    jitter: Callable[[], float] = random.random
    ca_bundle: str | None = None
    search_cap: int = SEARCH_CAP
    api_calls: int = 0
    sleeps: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.ca_bundle is None:
            self.ca_bundle = os.environ.get("REQUESTS_CA_BUNDLE") or None
        hs = HubSpot(
            access_token=self.access_token,
            host=self.base_url.rstrip("/"),
            retry=False,
            ssl_ca_cert=self.ca_bundle,
        )
        # each discovery property builds a new ApiClient (and pool): build them once
        self._search = hs.crm.objects.search_api
        self._batch = hs.crm.objects.batch_api
        self._basic = hs.crm.objects.basic_api
        self._assoc = hs.crm.associations.v4.batch_api
        self._owners = hs.crm.owners.owners_api
        self._props = hs.crm.properties.core_api
        self._props_batch = hs.crm.properties.batch_api
        self._prop_groups = hs.crm.properties.groups_api

    # -- the one place a request is made -------------------------------------------------
    def call(self, fn: Callable, *args, **kwargs) -> tuple[int, dict]:
        last: TransientConnectorError | None = None
        for attempt in range(self.max_retries + 1):
            if attempt:
                wait = (
                    last.retry_after
                    if last and last.retry_after is not None
                    else (
                        min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
                        * (0.5 + self.jitter() / 2)
                    )
                )
                self.sleeps.append(wait)
                self.sleep(wait)
            self.api_calls += 1
            try:
                resp = fn(*args, _preload_content=False, _request_timeout=self.timeout, **kwargs)
                return resp.status, _parse(resp.data)
            except API_EXCEPTIONS as exc:
                last = self._map(exc)
            except AttributeError as exc:
                # the library's ApiClient decodes `e.body` of its own body-less ApiException
                # (status 0: an SSL failure) and trips on None: map the original
                if not isinstance(exc.__context__, API_EXCEPTIONS):
                    raise
                last = self._map(exc.__context__)
            except (
                urllib3.exceptions.TimeoutError,
                urllib3.exceptions.ProtocolError,
                urllib3.exceptions.NewConnectionError,
            ) as exc:
                last = TransientConnectorError(f"HubSpot request failed: {exc}")
            except urllib3.exceptions.HTTPError as exc:
                raise PermanentConnectorError(f"HubSpot request failed: {exc}") from exc
            if getattr(last, "final", False):
                raise last
        raise TransientConnectorError(
            f"{last} (gave up after {self.max_retries + 1} attempts)",
            retry_after=last.retry_after if last else None,
        ) from last

    def _map(self, exc: ApiException) -> TransientConnectorError:
        """Raise permanent errors; return transient ones (to be retried)."""
        status = exc.status or 0
        body = _parse(exc.body, strict=False)
        what = f"HubSpot {status} {body.get('category', '')}: {body.get('message', exc.reason)}"
        if status == 401:
            raise AuthConnectorError(f"{what} — set a valid private-app token in {TOKEN_VAR}")
        if status == 403:
            raise AuthConnectorError(f"{what} — the token in {TOKEN_VAR} lacks a required scope")
        if status == 0:
            raise PermanentConnectorError(
                f"HubSpot request failed: {exc.reason} (a private CA? set REQUESTS_CA_BUNDLE)"
            )
        headers = exc.headers or {}
        retry_after = _seconds(headers.get("Retry-After"))
        if status == 429:
            err = TransientConnectorError(what, retry_after=retry_after)
            if body.get("policyName") == "DAILY":
                err.final = True  # type: ignore[attr-defined]  # not worth waiting out
            return err
        if status >= 500 or status in (423, 477):
            return TransientConnectorError(
                what, retry_after=retry_after or (2 if status == 423 else None)
            )
        raise PermanentConnectorError(what)

    # -- endpoints ------------------------------------------------------------------------
    def search(self, object_type: str, body: dict) -> dict:
        return self.call(self._search.do_search, object_type, body)[1]

    def batch_read(
        self,
        object_type: str,
        ids: list[str],
        properties: list[str],
        *,
        history: list[str] | None = None,
    ) -> list[dict]:
        """Read by id, 100 per request (50 when asking for property histories)."""
        out: list[dict] = []
        size = HISTORY_LIMIT if history else BATCH_LIMIT
        for i in range(0, len(ids), size):
            inputs = [{"id": x} for x in ids[i : i + size]]
            body = {"inputs": inputs, "properties": properties}
            body["propertiesWithHistory"] = history or []
            out += self.call(self._batch.read, object_type, body)[1].get("results", [])
        return out

    def batch_update(self, object_type: str, inputs: list[dict]) -> tuple[list[dict], list[dict]]:
        """One request (<= 100 inputs): (results, errors) — a 207 lists per-row errors."""
        if len(inputs) > BATCH_LIMIT:
            raise ValueError(f"at most {BATCH_LIMIT} inputs per batch update")
        data = self.call(self._batch.update, object_type, {"inputs": inputs})[1]
        return data.get("results", []), data.get("errors", [])

    def associations(self, from_type: str, to_type: str, ids: list[str]) -> dict[str, list[str]]:
        """{from id: [to ids]} through the v4 batch read; ids without any are absent."""
        out: dict[str, list[str]] = {}
        todo = [{"id": x} for x in dict.fromkeys(ids)]
        while todo:
            chunk, todo = todo[:ASSOC_LIMIT], todo[ASSOC_LIMIT:]
            data = self.call(self._assoc.get_page, from_type, to_type, {"inputs": chunk})[1]
            for r in data.get("results", []):
                src = str(r["from"]["id"])
                out.setdefault(src, []).extend(str(t["toObjectId"]) for t in r.get("to", []))
                if after := (r.get("paging") or {}).get("next", {}).get("after"):
                    todo.append({"id": src, "after": after})
        return out

    def owners(self) -> list[dict]:
        return list(self._paged(self._owners.get_page, limit=500))

    def archived(
        self, object_type: str, properties: list[str], *, associations: list[str] | None = None
    ) -> Iterator[dict]:
        extra = {"associations": associations} if associations else {}
        return self._paged(
            self._basic.get_page,
            object_type,
            limit=100,
            archived=True,
            properties=properties,
            **extra,
        )

    def properties(self, object_type: str) -> list[dict]:
        return self.call(self._props.get_all, object_type)[1].get("results", [])

    def create_properties(self, object_type: str, definitions: list[dict]) -> list[str]:
        """Create properties in one batch call; returns the names created (existing ones, which
        HubSpot reports as errors in a 207, are left alone)."""
        data = self.call(self._props_batch.create, object_type, {"inputs": definitions})[1]
        return [r["name"] for r in data.get("results", [])]

    def update_property(self, object_type: str, name: str, changes: dict) -> dict:
        """PATCH one property definition (`options` replaces the whole option list)."""
        return self.call(self._props.update, object_type, name, changes)[1]

    def create_group(self, object_type: str, name: str, label: str) -> None:
        try:
            self.call(self._prop_groups.create, object_type, {"name": name, "label": label})
        except PermanentConnectorError as exc:
            if not str(exc).startswith("HubSpot 409"):
                raise

    def _paged(self, fn: Callable, *args, **kwargs) -> Iterator[dict]:
        after = None
        while True:
            extra = {"after": after} if after else {}
            data = self.call(fn, *args, **kwargs, **extra)[1]
            yield from data.get("results", [])
            after = ((data.get("paging") or {}).get("next") or {}).get("after")
            if not after:
                return

    # -- incremental search ---------------------------------------------------------------
    def scan(
        self,
        object_type: str,
        properties: list[str],
        cursor: Cursor,
        *,
        limit: int = SEARCH_LIMIT,
        lastmod: str = LASTMOD,
        filters: tuple[dict, ...] = (),
    ) -> Iterator[tuple[list[dict], Cursor]]:
        """Yield (new records, cursor after them) page by page, in `lastmod` order.

        Each window is one search for what the cursor has not covered (`_after_cursor`, and
        `filters`) sorted by `lastmod` ascending and paged with `after`. When the next page
        would pass the 10,000-result cap, a new window starts at the last timestamp seen;
        records already seen at that timestamp (their ids are in the cursor) are dropped, so
        ties across a page, window or run boundary are neither missed nor repeated, whatever
        order HubSpot gives ties in. If a whole window shares one timestamp, the rest of that
        tie is drained in hs_object_id order before moving on.
        """
        ts, seen = cursor.ts, set(cursor.ids)
        limit = min(limit, SEARCH_LIMIT, self.search_cap)
        props = sorted(set(properties) | {lastmod})
        while True:
            start_ts, after, capped = ts, 0, False
            groups = _after_cursor(ts, seen, lastmod, filters)
            while True:
                if after + limit > self.search_cap:
                    capped = True
                    break
                body: dict = {
                    "filterGroups": groups,
                    "sorts": [{"propertyName": lastmod, "direction": "ASCENDING"}],
                    "properties": props,
                    "limit": limit,
                }
                if after:
                    body["after"] = str(after)
                data = self.search(object_type, body)
                results = data.get("results", [])
                page: list[dict] = []
                for rec in results:
                    rid, rts = str(rec.get("id") or ""), record_ms(rec, lastmod)
                    if rts is None or not rid:
                        page.append(rec)  # mapping reports it; it cannot move the cursor
                        continue
                    if ts is not None and (rts < ts or (rts == ts and rid in seen)):
                        continue
                    if rts != ts:
                        ts, seen = rts, set()
                    seen.add(rid)
                    page.append(rec)
                yield page, Cursor(ts, tuple(sorted(seen, key=_id_key)))
                nxt = ((data.get("paging") or {}).get("next") or {}).get("after")
                if nxt:
                    after = int(nxt)
                    continue
                got = after + len(results)
                capped = got >= self.search_cap and int(data.get("total") or 0) > got
                break
            if not capped:
                return
            if ts == start_ts and ts is not None:
                yield from self._drain(object_type, props, ts, seen, limit, lastmod, filters)
                return
            # else: re-window from the last timestamp seen

    def _drain(
        self,
        object_type: str,
        props: list[str],
        ts: int,
        seen: set[str],
        limit: int,
        lastmod: str,
        filters: tuple[dict, ...],
    ) -> Iterator[tuple[list[dict], Cursor]]:
        """More records share one timestamp than one search can return: walk them by id,
        then continue strictly after that timestamp."""
        last_id = 0
        while True:
            tie = [
                *filters,
                {"propertyName": lastmod, "operator": "EQ", "value": str(ts)},
                {"propertyName": "hs_object_id", "operator": "GT", "value": str(last_id)},
            ]
            after, more = 0, False
            while after + limit <= self.search_cap:
                body: dict = {
                    "filterGroups": [{"filters": tie}],
                    "limit": limit,
                    "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
                    "properties": props,
                }
                if after:
                    body["after"] = str(after)
                data = self.search(object_type, body)
                results = data.get("results", [])
                page = [r for r in results if str(r.get("id")) not in seen]
                seen.update(str(r.get("id")) for r in page)
                if results:
                    last_id = max(last_id, *(_id_key(str(r.get("id"))) for r in results))
                yield page, Cursor(ts, tuple(sorted(seen, key=_id_key)))
                nxt = ((data.get("paging") or {}).get("next") or {}).get("after")
                more = int(data.get("total") or 0) > after + len(results)
                if not nxt:
                    break
                after = int(nxt)
            if not more:
                break
        yield from self.scan(
            object_type, props, Cursor(ts + 1), limit=limit, lastmod=lastmod, filters=filters
        )


def _after_cursor(
    ts: int | None, seen: set[str], lastmod: str, filters: tuple[dict, ...]
) -> list[dict]:
    """Filter groups (OR-ed) for the records a cursor has not covered: `lastmod GT ts`, or
    `lastmod EQ ts` and an id not among the `seen` ones. That is exactly the complement of
    what the cursor covers, whatever order ties were read in, so a rerun re-reads nothing.
    With more seen ids than one NOT_IN filter takes, it is `lastmod GTE ts` instead, and the
    ids at `ts` come back and are dropped client side: that re-read (ceil(ties/200) searches
    per run, until a newer record moves the cursor) is the cost of checking for new ties."""
    if ts is None:
        return [{"filters": [*filters]}] if filters else []
    at = {"propertyName": lastmod, "value": str(ts)}
    if not seen or len(seen) > NOT_IN_LIMIT:
        return [{"filters": [*filters, {**at, "operator": "GTE"}]}]
    ids = sorted(seen, key=_id_key)
    new_id = {"propertyName": "hs_object_id", "operator": "NOT_IN", "values": ids}
    return [
        {"filters": [*filters, {**at, "operator": "GT"}]},
        {"filters": [*filters, {**at, "operator": "EQ"}, new_id]},
    ]


def record_ms(rec: dict, lastmod: str = LASTMOD) -> int | None:
    """The last-modified time of a search result in epoch ms, None when missing or unparsable."""
    try:
        value = parse_datetime((rec.get("properties") or {}).get(lastmod))
    except ValueError:
        return None
    return None if value is None else int(value.timestamp() * 1000)


def _id_key(value: str) -> int:
    return int(value) if value.isdigit() else 0


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _parse(data: bytes | str | None, *, strict: bool = True) -> dict:
    if not data:
        return {}
    try:
        out = json.loads(data)
    except ValueError as exc:
        if not strict:
            return {}
        raise TransientConnectorError(f"HubSpot sent an unparsable response: {exc}") from exc
    return out if isinstance(out, dict) else {"results": out}
