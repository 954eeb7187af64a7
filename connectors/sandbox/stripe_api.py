"""A local fake of the Stripe API (what stripe-python 16 sends), seeded from a Portfolio.

Endpoints (GET, form-encoded query as stripe-python sends it: `created[gte]=`, `types[0]=`,
`expand[0]=`): /v1/customers, /v1/subscriptions (`status`: default every status but canceled,
or `all`), /v1/invoices (`status`), /v1/charges, /v1/events (`types[]`, 30 days kept, as
Stripe keeps them). Every list is Stripe's list object, newest first:
`{"object": "list", "url": "/v1/...", "has_more": bool, "data": [...]}`, `limit` 1-100
(default 10), `starting_after` / `ending_before` an object id, `created[gt|gte|lt|lte]`.
`expand[]=data.customer` puts the customer object in place of its id.

Errors are Stripe's body `{"error": {"type", "message"[, "code", "param"]}}`: a bad key 401
(authentication_error), a bad parameter 400 (invalid_request_error, `param`), an unknown id in
starting_after 404 (resource_missing), a rate limit 429 (code rate_limit, Retry-After),
a server error 500 (api_error).

Seeding: one customer per account (email billing@<domain>; `metadata[crm_account_id]` = the
account's CRM id where `crm_ids` gives one, else none: matched by domain), one yearly
subscription priced at the account's ARR (canceled on churn), every portfolio invoice (open
until paid; `due_date` midnight UTC), a failed charge for each failed payment (at the due
date) and a succeeded one when paid, plus `unmatched` customers of unknown companies. Each
object has its creation event, paid invoices an invoice.paid event, failed charges a
charge.failed event.
"""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from connectors.sandbox.portfolio import Portfolio
from connectors.sandbox.server import Fault, Request, Response, SandboxServer

API_KEY = "sk_test_healthbot_sandbox"
RESOURCES = {
    "customers": "cus",
    "subscriptions": "sub",
    "invoices": "in",
    "charges": "ch",
    "events": "evt",
}
EVENT_DAYS = 30
_KEY = re.compile(r"^(\w+)((?:\[\w*\])*)$")


def _ts(d: date, hours: int = 0) -> int:
    return int(datetime(d.year, d.month, d.day, hours, tzinfo=UTC).timestamp())


def error(status: int, etype: str, message: str, **extra) -> Response:
    return Response(status, {"error": {"type": etype, "message": message, **extra}})


def parse_query(query: dict[str, list[str]]) -> dict:
    """Stripe's form encoding: `a[b]=1` -> {"a": {"b": "1"}}, `a[0]=x` -> {"a": ["x"]}."""
    out: dict = {}
    for raw, values in query.items():
        m = _KEY.match(raw)
        if not m:
            continue
        name, rest = m.group(1), re.findall(r"\[(\w*)\]", m.group(2))
        if not rest:
            out[name] = values[-1]
        elif rest[0].isdigit() or rest[0] == "":
            out.setdefault(name, []).extend(values)
        else:
            out.setdefault(name, {})[rest[0]] = values[-1]
    return out


@dataclass
class StripeSandbox:
    api_key: str = API_KEY
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    objects: dict[str, dict[str, dict]] = field(default_factory=lambda: {k: {} for k in RESOURCES})
    server: SandboxServer | None = None
    lock: threading.RLock = field(default_factory=threading.RLock)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))
    _order: dict[str, list[dict]] = field(default_factory=dict)  # kind -> newest first
    _positions: dict[str, dict[str, int]] = field(default_factory=dict)  # kind -> id -> index

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()

    def __enter__(self) -> StripeSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- data ------------------------------------------------------------------------------

    def _ordered(self, kind: str) -> list[dict]:
        """The objects of a kind newest first, as every list answers (kept until one is added)."""
        if kind not in self._order:
            rows = sorted(self.objects[kind].values(), key=lambda r: (r["created"], r["id"]))
            self._order[kind] = rows[::-1]
            self._positions[kind] = {r["id"]: i for i, r in enumerate(self._order[kind])}
        return self._order[kind]

    def new_id(self, kind: str) -> str:
        return f"{RESOURCES[kind]}_{next(self._ids):014d}"

    def add(self, kind: str, obj: dict, *, event: str | None = None, at: int | None = None):
        """Store an object (its `created` set) and, unless event is "", its event."""
        with self.lock:
            obj.setdefault("id", self.new_id(kind))
            obj.setdefault("created", at if at is not None else int(self.now.timestamp()))
            obj.setdefault("livemode", False)
            self.objects[kind][obj["id"]] = obj
            self._order.pop(kind, None)
            if event != "":
                self.emit(event or f"{obj['object']}.created", obj, obj["created"])
            return obj

    def emit(self, etype: str, obj: dict, at: int) -> dict:
        with self.lock:
            evt = {
                "id": self.new_id("events"),
                "object": "event",
                "type": etype,
                "created": at,
                "api_version": "2025-09-30.clover",
                "data": {"object": dict(obj)},
                "livemode": False,
            }
            self.objects["events"][evt["id"]] = evt
            self._order.pop("events", None)
            return evt

    def tick(self, seconds: int = 1) -> int:
        """The fake's clock moves on (a change made now comes after everything seeded)."""
        self.now += timedelta(seconds=seconds)
        return int(self.now.timestamp())

    def pay(self, invoice_id: str) -> dict:
        """The customer pays an open invoice now: a succeeded charge and invoice.paid."""
        with self.lock:
            inv = self.objects["invoices"][invoice_id]
            at = self.tick()
            inv.update(status="paid", amount_paid=inv["amount_due"], amount_remaining=0)
            inv["status_transitions"]["paid_at"] = at
            self.add("charges", charge(inv, "succeeded", at), event="", at=at)
            self.emit("invoice.paid", inv, at)
            return inv

    def fail_payment(self, invoice_id: str) -> dict:
        with self.lock:
            inv = self.objects["invoices"][invoice_id]
            at = self.tick()
            ch = self.add("charges", charge(inv, "failed", at), event="charge.failed", at=at)
            self.emit("invoice.payment_failed", inv, at)
            return ch

    # --- HTTP ------------------------------------------------------------------------------

    def route(self, req: Request) -> Response:
        if req.headers.get("authorization", "") != f"Bearer {self.api_key}":
            return error(401, "authentication_error", "Invalid API Key provided: sk_test_****")
        kind = req.path.removeprefix("/v1/").strip("/")
        if req.method != "GET" or kind not in RESOURCES:
            return error(
                404,
                "invalid_request_error",
                f"Unrecognized request URL ({req.method}: {req.path}).",
            )
        with self.lock:
            return self.list(kind, parse_query(req.query))

    def list(self, kind: str, q: dict) -> Response:
        try:
            limit = int(q.get("limit", 10))
        except ValueError:
            limit = 0
        if not 1 <= limit <= 100:
            return error(
                400,
                "invalid_request_error",
                "Invalid integer: limit must be between 1 and 100",
                param="limit",
            )
        tests = []  # what an object must pass to be listed
        if kind == "events":
            horizon = int(self.now.timestamp()) - EVENT_DAYS * 86400
            tests.append(lambda r: r["created"] >= horizon)
            if types := q.get("types"):
                tests.append(lambda r: r["type"] in types)
        created = q.get("created")
        if isinstance(created, dict):
            ops = {"gt": int.__gt__, "gte": int.__ge__, "lt": int.__lt__, "lte": int.__le__}
            for op, bound in created.items():
                if op not in ops or not str(bound).isdigit():
                    return error(
                        400,
                        "invalid_request_error",
                        f"Invalid created[{op}]",
                        param=f"created[{op}]",
                    )
                tests.append(lambda r, f=ops[op], b=int(bound): f(r["created"], b))
        if "customer" in q:
            tests.append(lambda r: r.get("customer") == q["customer"])
        if kind in ("invoices", "subscriptions") and (status := q.get("status", "")) != "all":
            if status:
                tests.append(lambda r: r["status"] == status)
            elif kind == "subscriptions":
                tests.append(lambda r: r["status"] != "canceled")
        ordered, start = self._ordered(kind), 0
        if after := q.get("starting_after"):
            if after not in self.objects[kind]:
                return error(
                    404,
                    "invalid_request_error",
                    f"No such object: '{after}'",
                    code="resource_missing",
                    param="starting_after",
                )
            start = self._positions[kind][after] + 1
        listed = (r for r in itertools.islice(ordered, start, None) if all(t(r) for t in tests))
        rows = list(itertools.islice(listed, limit + 1))
        page = rows[:limit]
        if "data.customer" in (q.get("expand") or []):
            page = [
                dict(r, customer=self.objects["customers"].get(r["customer"], r["customer"]))
                for r in page
            ]
        return Response(
            200,
            {"object": "list", "url": f"/v1/{kind}", "has_more": len(rows) > limit, "data": page},
        )

    def fault(self, fault: Fault, req: Request) -> Response:
        if fault.kind == "rate_limit":
            resp = error(
                429,
                "invalid_request_error",
                "Request rate limit exceeded. Learn more about rate limits here "
                "https://stripe.com/docs/rate-limits.",
                code="rate_limit",
            )
            if fault.retry_after is not None:
                resp.headers["Retry-After"] = str(int(fault.retry_after))
            return resp
        if fault.kind == "expired_token":
            return error(401, "authentication_error", "Expired API Key provided: sk_test_****")
        if fault.kind == "server_error":
            return error(500, "api_error", "An unknown error occurred")
        return self.route(req)


def charge(inv: dict, status: str, at: int) -> dict:
    failed = status == "failed"
    return {
        "object": "charge",
        "customer": inv["customer"],
        "invoice": inv["id"],
        "amount": inv["amount_due"],
        "currency": "usd",
        "status": status,
        "paid": not failed,
        "failure_code": "card_declined" if failed else None,
        "failure_message": "Your card was declined." if failed else None,
        "created": at,
    }


def seed(sb: StripeSandbox, p: Portfolio, crm_ids: dict[str, str | None], unmatched: int) -> None:
    customer_of: dict[str, str] = {}
    for i, a in enumerate(p.accounts):
        crm = crm_ids.get(a.external_id)
        cus = sb.add(
            "customers",
            {
                "object": "customer",
                "name": a.name,
                "email": f"billing@{a.domain}",
                "currency": "usd",
                "metadata": {"crm_account_id": crm} if crm else {},
            },
            at=_ts(a.customer_since, 9),
        )
        customer_of[a.external_id] = cus["id"]
        price = {
            "id": f"price_{i:08d}",
            "object": "price",
            "currency": "usd",
            "unit_amount": round(a.arr * 100),
            "recurring": {"interval": "year", "interval_count": 1},
        }
        status = "canceled" if a.churned_on else "active"
        sub = sb.add(
            "subscriptions",
            {
                "object": "subscription",
                "customer": cus["id"],
                "status": status,
                "items": {
                    "object": "list",
                    "data": [{"object": "subscription_item", "price": price, "quantity": 1}],
                    "has_more": False,
                },
            },
            event="customer.subscription.created",
            at=_ts(a.customer_since, 10),
        )
        if a.churned_on:
            sub["canceled_at"] = _ts(a.churned_on, 12)
            sb.emit("customer.subscription.deleted", sub, sub["canceled_at"])
    for v in p.invoices:
        due = _ts(v.due_on)
        paid = _ts(v.paid_on, 1) if v.paid_on else None
        cents = round(v.amount * 100)
        inv = sb.add(
            "invoices",
            {
                "object": "invoice",
                "customer": customer_of[v.account_id],
                "status": "paid" if paid else "open",
                "collection_method": "charge_automatically" if v.failed else "send_invoice",
                "due_date": due,
                "amount_due": cents,
                "amount_paid": cents if paid else 0,
                "amount_remaining": 0 if paid else cents,
                "status_transitions": {"finalized_at": due - 30 * 86400, "paid_at": paid},
            },
            at=due - 30 * 86400,
        )
        if v.failed:
            sb.add("charges", charge(inv, "failed", due), event="charge.failed", at=due)
        if paid:
            sb.add("charges", charge(inv, "succeeded", paid), at=paid)
            sb.emit("invoice.paid", inv, paid)
    for k in range(unmatched):
        sb.add(
            "customers",
            {
                "object": "customer",
                "name": f"Unknown Prospect {k + 1}",
                "email": f"ap@unknown-prospect-{k + 1}.example",
                "metadata": {},
            },
            at=_ts(p.start),
        )


def start_stripe_sandbox(
    portfolio: Portfolio,
    *,
    crm_ids: dict[str, str | None] | None = None,
    unmatched: int = 1,
    api_key: str = API_KEY,
    now: datetime | None = None,
    accounts: Iterable[str] | None = None,
) -> StripeSandbox:
    """Serve the portfolio's billing on http://127.0.0.1:<port> (the stripe library takes an
    http api_base). `crm_ids`: account id -> the CRM id its customer's metadata holds (None:
    none, matched by email domain); default: the portfolio id, except every third account.
    The clock stands one day after the portfolio's end."""
    end = datetime(portfolio.end.year, portfolio.end.month, portfolio.end.day, tzinfo=UTC)
    sb = StripeSandbox(api_key=api_key, now=now or end + timedelta(days=1))
    if crm_ids is None:
        crm_ids = {
            a.external_id: (None if i % 3 == 2 else a.external_id)
            for i, a in enumerate(portfolio.accounts)
        }
    seed(sb, portfolio, crm_ids, unmatched)
    sb.server = SandboxServer(sb.route, sb.fault).start()
    return sb
