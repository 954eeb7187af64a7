"""A local fake of the Salesforce REST API (what simple-salesforce 1.12 sends), over TLS.

Endpoints (under /services/data/vXX.X/):
  GET query/?q=SOQL, queryAll/?q=SOQL   the SOQL subset of salesforce_soql; pages of
      `Sforce-Query-Options: batchSize=N` (default and max 2000, min 200) with
      {totalSize, done, nextRecordsUrl: /services/data/vXX.X/query/01g...-2000, records};
      `query` leaves IsDeleted rows out, `queryAll` keeps them. Child rows of a parent-child
      subquery count toward the batch, as in Salesforce. At most 10 open cursors.
  GET query/{locator}-{offset}          the next page (INVALID_QUERY_LOCATOR when released)
  GET sobjects/{obj}/describe           fields (name, type, referenceTo, relationshipName;
      picklists: picklistValues, restrictedPicklist — salesforce_picklists)
  GET sobjects/{obj}/{id}, PATCH sobjects/{obj}/{id} (204)
  PATCH composite/sobjects              sObject Collections update: <= 200 records, one
      SaveResult per record {id, success, errors[{statusCode, message, fields}]}, allOrNone
  POST composite                        <= 25 subrequests (<= 5 queries), each routed here;
      {compositeResponse: [{body, httpHeaders, httpStatusCode, referenceId}]}
  GET limits/
Every response carries `Sforce-Limit-Info: api-usage=N/LIMIT`; past the daily allocation the
answer is 403 REQUEST_LIMIT_EXCEEDED. Auth: `Authorization: Bearer <token>`, else 401
INVALID_SESSION_ID. Faults: rate_limit -> 403 REQUEST_LIMIT_EXCEEDED as Salesforce sends it (or
429 + Retry-After when started with rate_limit_status=429), server_error -> 500
UNKNOWN_EXCEPTION, expired_token -> 401, malformed -> the page's first record loses its Id.
Bulk API 2.0 ingest (jobs/ingest): salesforce_bulk. Metadata API (POST /services/Soap/m/vXX.X,
createMetadata / readMetadata / updateMetadata of CustomField): salesforce_metadata. A value
outside a restricted picklist fails its record (INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST) in
every write path. Each sandbox has its own
schema (`score_fields=False`: an org without the Health_* Account fields; fields created through
the Metadata API join it). Not emulated: SOAP login, Bulk 2.0 query.
"""

from __future__ import annotations

import itertools
import os
import re
import ssl
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import trustme

from connectors.sandbox.portfolio import Portfolio
from connectors.sandbox.salesforce_metadata import METADATA_PATH, metadata_call
from connectors.sandbox.salesforce_picklists import TIER_FIELD, ValueSet, tier_value_set
from connectors.sandbox.salesforce_seed import (
    CHILDREN,
    HEALTH_FIELDS,
    SCHEMA,
    describe,
    org_schema,
    seed,
    sf_ts,
    sfid,
)
from connectors.sandbox.server import Fault, Request, Response, SandboxServer

TOKEN = "00DFK0000000001!sandbox-session"
VERSION = "59.0"
_PATH = re.compile(r"^/services/data/v(\d+\.\d)/(.*?)/?$")


def sf_error(status: int, code: str, message: str, headers: dict | None = None) -> Response:
    return Response(status, [{"message": message, "errorCode": code}], dict(headers or {}))


_CA: list = []


def tls_context() -> tuple[ssl.SSLContext, str]:
    """A server context signed by a throwaway CA, and the CA's PEM path for the client."""
    if not _CA:
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        fd, path = tempfile.mkstemp(prefix="sf-fake-ca-", suffix=".pem")
        os.close(fd)
        ca.cert_pem.write_to_path(path)
        _CA.extend([cert, path])
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    _CA[0].configure_cert(ctx)
    return ctx, _CA[1]


class SalesforceSandbox:
    def __init__(
        self,
        portfolio: Portfolio | None,
        *,
        token: str,
        api_limit: int,
        rate_limit_status: int,
        version: str = VERSION,
        score_fields: bool = True,
        metadata_access: bool = True,
        custom_fields: bool = True,
        without: Iterable[str] = (),
        tier_values: Iterable[str] | None = None,
    ):
        self.db = seed(portfolio) if portfolio is not None else {o: {} for o in SCHEMA}
        self.schema = {obj: dict(fields) for obj, fields in SCHEMA.items()}  # this org's fields
        if not score_fields:
            for name in HEALTH_FIELDS:
                del self.schema["Account"][name]
        gone = [tuple(f.split(".", 1)) for f in without]
        if not custom_fields:  # a fresh org: Salesforce's standard fields only
            gone += [
                (obj, f)
                for obj, fields in self.schema.items()
                for f in fields
                if f.endswith("__c") and f not in HEALTH_FIELDS
            ]
        for obj, name in gone:
            del self.schema[obj][name]
        self.metadata_access = metadata_access  # False: Metadata API calls get INSUFFICIENT_ACCESS
        self.field_metadata: dict[str, dict] = {}  # CustomField definitions by full name
        self.picklists: dict[tuple[str, str], ValueSet] = {}  # restricted value sets
        if TIER_FIELD[1] in self.schema[TIER_FIELD[0]]:
            self.picklists[TIER_FIELD] = tier_value_set(tier_values)
        self.token, self.api_limit, self.version = token, api_limit, version
        self.rate_limit_status = rate_limit_status
        end = portfolio.end if portfolio is not None else datetime.now(UTC).date()
        self.now = datetime.combine(end + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
        self.cursors: OrderedDict[str, tuple] = OrderedDict()  # locator -> (plan, batch size)
        self.cursor_ids = itertools.count(1)
        self._ids = itertools.count(1)
        self.lock = threading.RLock()
        self.server: SandboxServer
        self.url = self.ca_path = ""

    # --- helpers for tests ---------------------------------------------------------------

    def tick(self) -> str:
        """The fake's clock: every change moves it half a second (two changes per second)."""
        self.now += timedelta(milliseconds=500)
        return sf_ts(self.now)

    def record(self, obj: str, rid: str) -> dict:
        return self.db[obj][rid]

    def modify(self, obj: str, rid: str, **fields) -> dict:
        with self.lock:
            rec = self.db[obj][rid]
            rec.update(fields)
            rec["SystemModstamp"] = rec["LastModifiedDate"] = self.tick()
            return rec

    def delete(self, obj: str, rid: str) -> dict:
        return self.modify(obj, rid, IsDeleted=True)

    def add(self, obj: str, **fields) -> dict:
        with self.lock:
            rid = fields.pop("Id", None) or sfid(obj, 900_000_000 + next(self._ids))
            ts = self.tick()
            rec = dict.fromkeys(f for f in self.schema[obj] if f not in ("Id",))
            rec.update(
                Id=rid, IsDeleted=False, CreatedDate=ts, LastModifiedDate=ts, SystemModstamp=ts
            )
            rec.update(fields)
            self.db[obj][rid] = rec
            return rec

    def set_timestamp(self, obj: str, ids, ts: datetime) -> None:
        """Give many records one SystemModstamp (e.g. a mass update)."""
        with self.lock:
            for rid in ids:
                self.db[obj][rid]["SystemModstamp"] = sf_ts(ts)

    def expire_token(self) -> None:
        self.token = "expired-" + self.token

    # --- routing ---------------------------------------------------------------------------

    def usage_header(self) -> dict[str, str]:
        return {"Sforce-Limit-Info": f"api-usage={len(self.server.requests)}/{self.api_limit}"}

    def route(self, req: Request) -> Response:
        with org_schema(self.schema):
            if req.path.startswith(METADATA_PATH):  # SOAP: the session id is in the envelope
                resp = metadata_call(self, req)
            else:
                resp = self._route(req)
        resp.headers.update(self.usage_header())
        return resp

    def _route(self, req: Request) -> Response:
        if req.headers.get("authorization") != f"Bearer {self.token}":
            return sf_error(401, "INVALID_SESSION_ID", "Session expired or invalid")
        if len(self.server.requests) > self.api_limit:
            return sf_error(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
        m = _PATH.match(req.path)
        if not m:
            return sf_error(404, "NOT_FOUND", "The requested resource does not exist")
        parts = m.group(2).split("/")
        with self.lock:
            return self._resource(req, parts)

    def _resource(self, req: Request, parts: list[str]) -> Response:
        from connectors.sandbox.salesforce_query import composite, query, query_more, update_many

        head, method = parts[0], req.method
        if head in ("query", "queryAll") and method == "GET":
            if len(parts) == 1:
                return query(
                    self, req.arg("q") or "", deleted=head == "queryAll", headers=req.headers
                )
            return query_more(self, parts[1], head)
        if head == "sobjects" and len(parts) >= 2 and parts[1] in SCHEMA:
            obj = parts[1]
            if len(parts) == 3 and parts[2] == "describe" and method == "GET":
                return Response(200, describe(obj, self.version, self.picklists))
            if len(parts) == 3 and method == "GET":
                rec = self.db[obj].get(parts[2])
                if rec is None or rec["IsDeleted"]:
                    return sf_error(404, "NOT_FOUND", "The requested resource does not exist")
                return Response(200, {"attributes": self.attributes(obj, rec["Id"]), **rec})
            if len(parts) == 3 and method == "PATCH":
                body = dict(req.json() or {}, attributes={"type": obj}, id=parts[2])
                result = update_many(self, [body], all_or_none=True)[0]
                if result["success"]:
                    return Response(204, b"")
                return Response(
                    400,
                    [
                        {
                            "message": e["message"],
                            "errorCode": e["statusCode"],
                            "fields": e["fields"],
                        }
                        for e in result["errors"]
                    ],
                )
        if head == "composite":
            return composite(self, req, parts[1:])
        if head == "jobs":  # Bulk API 2.0 ingest
            from connectors.sandbox.salesforce_bulk import handle

            return handle(self, req, parts[1:])
        if head == "limits" and method == "GET":
            used = len(self.server.requests)
            return Response(
                200,
                {"DailyApiRequests": {"Max": self.api_limit, "Remaining": self.api_limit - used}},
            )
        return sf_error(404, "NOT_FOUND", "The requested resource does not exist")

    def attributes(self, obj: str, rid: str) -> dict:
        return {"type": obj, "url": f"/services/data/v{self.version}/sobjects/{obj}/{rid}"}

    def fault_response(self, fault: Fault, req: Request) -> Response:
        if fault.kind == "rate_limit":
            if self.rate_limit_status == 429:
                headers = (
                    {"Retry-After": f"{fault.retry_after:g}"}
                    if fault.retry_after is not None
                    else {}
                )
                resp = sf_error(429, "REQUEST_LIMIT_EXCEEDED", "Too many requests.", headers)
            else:
                resp = sf_error(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
        elif fault.kind == "server_error":
            resp = sf_error(
                500,
                "UNKNOWN_EXCEPTION",
                "An unexpected error occurred. Please "
                "include this ErrorId if you contact support: 1234567-8901 (-12345)",
            )
        elif fault.kind == "expired_token":
            resp = sf_error(401, "INVALID_SESSION_ID", "Session expired or invalid")
        else:  # malformed: a page whose first record lost its Id
            with org_schema(self.schema):
                resp = self._route(req)
            records = resp.body.get("records") if isinstance(resp.body, dict) else None
            if records:
                records[0] = {k: v for k, v in records[0].items() if k != "Id"}
        resp.headers.update(self.usage_header())
        return resp

    # --- lifecycle -------------------------------------------------------------------------

    def stop(self) -> None:
        self.server.stop()

    def __enter__(self) -> SalesforceSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_salesforce_sandbox(
    portfolio: Portfolio | None = None,
    *,
    token: str = TOKEN,
    api_limit: int = 15_000,
    rate_limit_status: int = 403,
    score_fields: bool = True,
    metadata_access: bool = True,
    custom_fields: bool = True,
    without: Iterable[str] = (),
    tier_values: Iterable[str] | None = None,
) -> SalesforceSandbox:
    """Seed from `portfolio` and serve on https://127.0.0.1:<port>; `.ca_path` is the CA to
    trust (session.verify / REQUESTS_CA_BUNDLE). `score_fields=False`: Account has none of the
    Health_* fields; `metadata_access=False`: the user may not use the Metadata API;
    `custom_fields=False`: an org with Salesforce's standard fields only (no Segment__c,
    ARR__c, CSAT__c, Champion__c, ...); `without`: just these fields missing ("Case.CSAT__c").
    A missing field is absent from describe, and a query naming it gets Salesforce's 400
    INVALID_FIELD ("No such column 'X' on entity 'Y'. ..."). `tier_values`: the restricted
    Health_Tier__c picklist holds just these (an org set up before a tier was added); by
    default every tier."""
    sandbox = SalesforceSandbox(
        portfolio,
        token=token,
        api_limit=api_limit,
        rate_limit_status=rate_limit_status,
        score_fields=score_fields,
        metadata_access=metadata_access,
        custom_fields=custom_fields,
        without=without,
        tier_values=tier_values,
    )
    ctx, sandbox.ca_path = tls_context()
    sandbox.server = SandboxServer(sandbox.route, sandbox.fault_response, ssl_context=ctx).start()
    sandbox.url = sandbox.server.url
    return sandbox


__all__ = ["CHILDREN", "SalesforceSandbox", "start_salesforce_sandbox", "TOKEN", "VERSION"]
