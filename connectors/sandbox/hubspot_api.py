"""A local fake of HubSpot's CRM v3/v4 API, served by SandboxServer (see VENDORS.md §3).

Supports: objects list/get (`archived=true`, `associations=` too), search (filters, 1 sort,
`limit` <= 200, `after` offsets, `total`, the 10,000-result cap: a request whose after+limit
passes the cap gets HubSpot's 400), batch read (<= 100 inputs, <= 50 with
`propertiesWithHistory`) and update (200 or 207 with `errors`), properties (GET, POST with 409
on a duplicate, batch create, GET and PATCH of one property: `options` replaces the option list)
and groups, v4 associations batch read (<= 1,000 inputs), owners. A batch update setting an
enumeration property to a value that is not one of its options fails that company (207) with
HubSpot's VALIDATION_ERROR "Property values were not valid: [{... "error":"INVALID_OPTION",
"name":<property> ...}]" (hubspot_properties); with `router.refuse_whole_batch`, the whole
batch is refused with that message as a 400 instead (nothing applied).
Bearer auth; error bodies `{status, message, correlationId, category}`; 429 bodies with
`errorType: RATE_LIMIT` and a `policyName`. Plain HTTP, or HTTPS with `tls=True` (a throwaway
trustme CA whose PEM is `sandbox.ca_path`).
"""

from __future__ import annotations

import os
import re
import ssl
import tempfile
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import trustme

from connectors.sandbox.hubspot_properties import invalid_options, one_property, with_defaults
from connectors.sandbox.hubspot_store import HubSpotStore, iso, lastmod_of, ms
from connectors.sandbox.server import Fault, Request, Response, SandboxServer

TOKEN = "pat-na1-sandbox-token"
RATE_HEADERS = {
    "X-HubSpot-RateLimit-Max": "100",
    "X-HubSpot-RateLimit-Remaining": "99",
    "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
}
OBJ = re.compile(r"^/crm/v3/objects/(\w+)(?:/(search|batch/read|batch/update|[^/]+))?/?$")
PROPS = re.compile(r"^/crm/v3/properties/(\w+)(?:/(groups|batch/create|\w+))?/?$")
ASSOC_TYPES = [{"category": "HUBSPOT_DEFINED", "typeId": 1, "label": None}]
ASSOC = re.compile(r"^/crm/v4/associations/(\w+)/(\w+)/batch/read/?$")


def error(status: int, message: str, category: str, **extra) -> Response:
    body = {
        "status": "error",
        "message": message,
        "correlationId": str(uuid.uuid4()),
        "category": category,
        **extra,
    }
    return Response(status, body)


class HubSpotRouter:
    def __init__(self, store: HubSpotStore, *, token: str = TOKEN, search_cap: int = 10_000):
        self.store = store
        self.token = token
        self.search_cap = search_cap
        self.malformed_next = False
        # a batch with an invalid option is refused whole (400) instead of per company (207):
        # HubSpot's documentation does not settle which; the sink must cope with both
        self.refuse_whole_batch = False
        self.applied: Counter = Counter()  # tests: batch updates applied per object id

    def __call__(self, req: Request) -> Response:
        if req.headers.get("authorization") != f"Bearer {self.token}":
            return error(
                401,
                "Authentication credentials not found. This API supports OAuth 2.0 "
                "authentication and you can find more details at "
                "https://developers.hubspot.com/docs/methods/auth/oauth-overview",
                "INVALID_AUTHENTICATION",
            )
        resp = self.route(req)
        if "/search" not in req.path:  # search responses carry no rate-limit headers
            resp.headers = {**RATE_HEADERS, **resp.headers}
        return resp

    def route(self, req: Request) -> Response:
        if req.path.rstrip("/") == "/crm/v3/owners" and req.method == "GET":
            return self.owners(req)
        if m := ASSOC.match(req.path):
            return self.associations(m[1], m[2], req.json() or {})
        if m := PROPS.match(req.path):
            return self.props(req, m[1], m[2])
        m = OBJ.match(req.path)
        if not m or m[1] not in self.store.objects:
            return error(404, f"Unknown path {req.method} {req.path}", "OBJECT_NOT_FOUND")
        kind, op = m[1], m[2]
        if op == "search" and req.method == "POST":
            return self.search(kind, req.json() or {})
        if op == "batch/read" and req.method == "POST":
            return self.batch_read(kind, req.json() or {})
        if op == "batch/update" and req.method == "POST":
            return self.batch_update(kind, req.json() or {})
        if op is None and req.method == "GET":
            return self.list(kind, req)
        if op and req.method == "GET":
            obj = self.store.objects[kind].get(op)
            if obj is None:
                return error(
                    404, "Object not found.  objectId are usually numeric.", "OBJECT_NOT_FOUND"
                )
            return Response(200, self.store.view(obj, _csv(req, "properties"), kind=kind))
        return error(405, f"Method {req.method} not allowed", "VALIDATION_ERROR")

    # -- objects -----------------------------------------------------------------------
    def search(self, kind: str, body: dict) -> Response:
        limit, after = int(body.get("limit") or 10), int(body.get("after") or 0)
        groups, sorts = body.get("filterGroups") or [], body.get("sorts") or []
        if limit > 200:
            return error(400, "limit must be at most 200", "VALIDATION_ERROR")
        n_filters = sum(len(g.get("filters", [])) for g in groups)
        if len(groups) > 5 or n_filters > 18 or any(len(g.get("filters", [])) > 6 for g in groups):
            return error(400, "Too many filters or filter groups", "VALIDATION_ERROR")
        if len(sorts) > 1:
            return error(400, "Only one sort is supported", "VALIDATION_ERROR")
        if after + limit > self.search_cap:
            return error(
                400,
                f"Search results are limited to {self.search_cap:,}: `after` "
                f"({after}) + `limit` ({limit}) exceeds it",
                "VALIDATION_ERROR",
            )
        defined = self.store.properties.get(kind, {})
        for f in (f for g in groups for f in g.get("filters", [])):
            name = f.get("propertyName", "")
            if name.startswith("healthbot_") and name not in defined:
                return error(
                    400,
                    f"There was a problem with the request. Property '{name}' does not exist",
                    "VALIDATION_ERROR",
                )
        rows = self.store.search(kind, groups, sorts)
        page = rows[after : after + limit]
        results = [self.store.view(o, body.get("properties"), kind=kind) for o in page]
        if self.malformed_next and results:
            self.malformed_next = False
            results[0]["properties"][lastmod_of(kind)] = "not-a-date"
        out: dict = {"total": len(rows), "results": results}
        nxt = after + len(page)
        if nxt < len(rows) and nxt < self.search_cap:
            out["paging"] = {"next": {"after": str(nxt), "link": None}}
        return Response(200, out)

    def list(self, kind: str, req: Request) -> Response:
        limit, after = min(int(req.arg("limit") or 10), 100), int(req.arg("after") or 0)
        archived = (req.arg("archived") or "").lower() == "true"
        pool = self.store.archived[kind] if archived else self.store.objects[kind]
        rows = sorted(pool.values(), key=lambda o: int(o["id"]))
        page = [
            self.store.view(
                o,
                _csv(req, "properties"),
                kind=kind,
                with_history=_csv(req, "propertiesWithHistory"),
                associations=_csv(req, "associations"),
            )
            for o in rows[after : after + limit]
        ]
        out: dict = {"results": page}
        if after + limit < len(rows):
            out["paging"] = {"next": {"after": str(after + limit), "link": None}}
        return Response(200, out)

    def batch_read(self, kind: str, body: dict) -> Response:
        inputs, history = body.get("inputs") or [], body.get("propertiesWithHistory") or []
        cap = 50 if history else 100
        if len(inputs) > cap:
            return error(400, f"Batch size must be at most {cap}", "VALIDATION_ERROR")
        found, missing = [], []
        for i in inputs:
            obj = self.store.objects[kind].get(str(i.get("id")))
            if obj is None:
                missing.append(str(i.get("id")))
                continue
            view = self.store.view(obj, body.get("properties"), kind=kind, with_history=history)
            found.append(view)
        return self._batch(found, missing, "OBJECT_NOT_FOUND", "Could not get some objects")

    def batch_update(self, kind: str, body: dict) -> Response:
        inputs = body.get("inputs") or []
        if len(inputs) > 100:
            return error(400, "Batch size must be at most 100", "VALIDATION_ERROR")
        known = self.store.properties[kind]
        if self.refuse_whole_batch:
            for i in inputs:
                if invalid := invalid_options(known, i.get("properties") or {}):
                    return error(400, invalid, "VALIDATION_ERROR")
        done, errors = [], []
        for i in inputs:
            oid, props = str(i.get("id")), i.get("properties") or {}
            bad = [p for p in props if known and p not in known]
            invalid = invalid_options(known, props)
            if oid not in self.store.objects[kind]:
                errors.append(_err("OBJECT_NOT_FOUND", f"Object {oid} not found", [oid]))
            elif bad:
                errors.append(
                    _err(
                        "VALIDATION_ERROR",
                        f"Property values were not valid: {bad} do not exist",
                        [oid],
                    )
                )
            elif invalid:
                errors.append(_err("VALIDATION_ERROR", invalid, [oid]))
            else:
                self.applied[oid] += 1
                done.append(self.store.update(kind, oid, {k: str(v) for k, v in props.items()}))
        return self._batch(done, [], "", "", errors=errors)

    def _batch(self, results, missing, category, message, errors=None) -> Response:
        now = iso(self.store.now_ms)
        body = {"status": "COMPLETE", "results": results, "startedAt": now, "completedAt": now}
        errors = list(errors or [])
        if missing:
            errors.append(_err(category, f"{message}: {', '.join(missing)}", missing))
        if errors:
            body.update(numErrors=len(errors), errors=errors)
            return Response(207, body)
        return Response(200, body)

    # -- associations, owners, properties ----------------------------------------------
    def associations(self, from_type: str, to_type: str, body: dict) -> Response:
        inputs = body.get("inputs") or []
        if len(inputs) > 1000:
            return error(400, "Batch read is limited to 1000 inputs", "VALIDATION_ERROR")
        results, missing = [], []
        for i in inputs:
            oid = str(i.get("id"))
            to = self.store.associated(from_type, to_type, oid)
            if not to:
                missing.append(oid)
                continue
            links = [{"toObjectId": int(t), "associationTypes": ASSOC_TYPES} for t in to]
            results.append({"from": {"id": oid}, "to": links})
        errors = [
            _err("NO_ASSOCIATIONS_FOUND", f"No {to_type} is associated with {from_type} {m}.", [m])
            for m in missing
        ]
        return self._batch(results, [], "", "", errors=errors)

    def owners(self, req: Request) -> Response:
        limit, after = min(int(req.arg("limit") or 100), 500), int(req.arg("after") or 0)
        rows = self.store.owners
        out: dict = {"results": rows[after : after + limit]}
        if after + limit < len(rows):
            out["paging"] = {"next": {"after": str(after + limit)}}
        return Response(200, out)

    def props(self, req: Request, kind: str, op: str | None) -> Response:
        defs = self.store.properties.setdefault(kind, {})
        if op not in (None, "groups", "batch/create"):
            return one_property(defs, kind, str(op), req)
        if op == "groups":
            if req.method == "POST":
                return Response(201, {**(req.json() or {}), "archived": False, "displayOrder": -1})
            return Response(200, {"results": []})
        if req.method == "GET":
            return Response(200, {"results": list(defs.values())})
        items = (req.json() or {}).get("inputs", []) if op == "batch/create" else [req.json()]
        created, dups = [], []
        for p in items:
            missing = [k for k in ("name", "label", "type", "fieldType", "groupName") if k not in p]
            if missing:
                return error(400, f"Missing required fields {missing}", "VALIDATION_ERROR")
            if p["name"] in defs:
                dups.append(p["name"])
                continue
            defs[p["name"]] = {
                **p,
                "options": with_defaults(p.get("options") or []),
                "createdAt": iso(self.store.now_ms),
                "archived": False,
            }
            created.append(defs[p["name"]])
        if op != "batch/create":
            if dups:
                return error(409, f"A property named '{dups[0]}' already exists.", "CONFLICT")
            return Response(201, created[0])
        return self._batch(created, dups, "CONFLICT", "Properties already exist")


def _err(category: str, message: str, ids: list[str]) -> dict:
    return {"status": "error", "category": category, "message": message, "context": {"ids": ids}}


def _csv(req: Request, name: str) -> list[str] | None:
    """A list query parameter, sent repeated (the client's "multi") or comma-separated."""
    values = [v for raw in req.query.get(name, []) for v in raw.split(",") if v]
    return values or None


_CA: list = []


def tls_context() -> tuple[ssl.SSLContext, str]:
    """A server context signed by a throwaway CA (made once per process), and its PEM path."""
    if not _CA:
        ca = trustme.CA()
        fd, path = tempfile.mkstemp(prefix="hubspot-fake-ca-", suffix=".pem")
        os.close(fd)
        ca.cert_pem.write_to_path(path)
        _CA.extend([ca.issue_cert("127.0.0.1", "localhost"), path])
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    _CA[0].configure_cert(ctx)
    return ctx, _CA[1]


def fault_response(fault: Fault, req: Request) -> Response:
    if fault.kind == "rate_limit":
        search = "/search" in req.path
        resp = error(
            429,
            "You have reached your secondly limit."
            if search
            else "You have reached your ten_secondly_rolling limit.",
            "RATE_LIMITS",
            errorType="RATE_LIMIT",
            groupName="sandbox",
            policyName="SECONDLY" if search else "TEN_SECONDLY_ROLLING",
        )
        if fault.retry_after is not None:
            resp.headers["Retry-After"] = f"{fault.retry_after:g}"
        return resp
    if fault.kind == "expired_token":
        return error(
            401,
            "The OAuth token used to make this call expired 1 second(s) ago.",
            "EXPIRED_AUTHENTICATION",
            context={"expire time": ["1 second(s) ago"]},
        )
    if fault.kind == "malformed":
        return Response(
            200, b'{"results": [{"id": "1", "properties": ', {"Content-Type": "application/json"}
        )
    return error(502, "Bad Gateway: internal error, please retry", "INTERNAL_ERROR")


@dataclass
class HubSpotSandbox:
    store: HubSpotStore
    router: HubSpotRouter
    server: SandboxServer
    company_ids: dict[str, str]  # portfolio account external_id -> HubSpot company id
    token: str = TOKEN
    ca_path: str | None = None  # the CA to trust when served over HTTPS

    @property
    def contact_ids(self) -> dict[str, str]:
        """Portfolio contact external_id -> HubSpot contact id."""
        return self.store.contact_ids

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def applied(self) -> Counter:
        """Batch updates applied per company id (what tests count writes by)."""
        return self.router.applied

    def stop(self) -> None:
        self.server.stop()

    def __enter__(self) -> HubSpotSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # helpers for tests ------------------------------------------------------------------
    def modify(self, kind: str, obj_id: str, **props: str | None) -> dict:
        return self.store.update(kind, obj_id, props)

    def set_modified(self, kind: str, ids: list[str], when: str | int) -> None:
        """Stamp many records with one hs_lastmodifieddate (ISO or epoch ms)."""
        at = when if isinstance(when, int) else ms(when)
        for oid in ids:
            self.store.update(kind, oid, {}, modified_ms=at)

    def delete(self, kind: str, obj_id: str) -> dict:
        return self.store.archive(kind, obj_id)

    def add_companies(
        self, n: int, *, start_ms: int | None = None, step_ms: int = 1, prefix: str = "Bulk"
    ) -> list[str]:
        """Add `n` tiny companies modified at start_ms, start_ms + step_ms, ... (fast)."""
        at = start_ms if start_ms is not None else self.store.now_ms + 1
        base = max((int(i) for i in self.store.objects["companies"]), default=10_000) + 1
        ids = []
        for k in range(n):
            oid = str(base + k)
            self.store.put(
                "companies",
                oid,
                {"name": f"{prefix} {oid}"},
                created_ms=at + k * step_ms,
                modified_ms=at + k * step_ms,
            )
            ids.append(oid)
        self.store.now_ms = max(self.store.now_ms, at + n * step_ms)
        return ids

    def contact_leaves(self, contact_id: str) -> dict:
        """A contact is flagged as having left its company."""
        return self.store.update("contacts", contact_id, {"healthbot_left_company": "true"})

    def move_contact(self, contact_id: str, company_id: str | None) -> dict:
        """Re-associate a contact with another company (or none), as its primary company."""
        for old in self.store.associated("contacts", "companies", contact_id):
            self.store.dissociate("contacts", contact_id, "companies", old)
        if company_id is not None:
            self.store.associate("contacts", contact_id, "companies", company_id)
        return self.store.update("contacts", contact_id, {"associatedcompanyid": company_id})

    def add_raw(self, kind: str, obj: dict) -> None:
        """Put a record as given (for malformed-record tests)."""
        self.store.objects[kind][str(obj.get("id"))] = obj

    def remove_option(self, kind: str, name: str, value: str) -> None:
        """A portal whose enumeration property lacks an option (set up before it existed)."""
        prop = self.store.properties[kind][name]
        prop["options"] = [o for o in prop.get("options") or [] if o.get("value") != value]

    def corrupt_next_search(self) -> None:
        """The next search page's first record comes back with an unparsable timestamp."""
        self.router.malformed_next = True


CUSTOM_DATA_PROPERTIES = (  # what a fresh portal lacks of what healthbot reads
    ("companies", "healthbot_segment"),
    ("companies", "healthbot_arr"),
    ("companies", "healthbot_renewal_date"),
    ("companies", "healthbot_last_exec_meeting"),
    ("deals", "healthbot_prior_amount"),
    ("contacts", "healthbot_champion"),
    ("contacts", "healthbot_left_company"),
)


def start_hubspot_sandbox(
    portfolio=None,
    *,
    token: str = TOKEN,
    search_cap: int = 10_000,
    tls: bool = False,
    ssl_context=None,
    champion_properties: bool = True,
    custom_properties: bool = True,
) -> HubSpotSandbox:
    """`champion_properties=False`: a portal where the healthbot_* contact properties were
    never created (searching on them is a 400); `custom_properties=False`: none of the
    healthbot_* data properties exist (companies, deals, contacts): answers leave them out."""
    store = HubSpotStore()
    if not champion_properties or not custom_properties:
        store.properties["contacts"].clear()
    if not custom_properties:
        store.absent |= {(kind, name) for kind, name in CUSTOM_DATA_PROPERTIES}
    ids = store.seed(portfolio) if portfolio is not None else {}
    router = HubSpotRouter(store, token=token, search_cap=search_cap)
    ca_path = None
    if tls and ssl_context is None:
        ssl_context, ca_path = tls_context()
    server = SandboxServer(router, fault_response, ssl_context=ssl_context)
    server.start()
    return HubSpotSandbox(store, router, server, ids, token, ca_path)


@contextmanager
def hubspot_sandbox(portfolio=None, **opts) -> Iterator[HubSpotSandbox]:
    sandbox = start_hubspot_sandbox(portfolio, **opts)
    try:
        yield sandbox
    finally:
        sandbox.stop()
