"""A local fake of the Zendesk Support API, seeded from a sandbox Portfolio.

Endpoints:
  GET /api/v2/incremental/tickets/cursor.json   start_time | cursor, per_page (<= 1000),
      include=organizations,metric_sets, exclude_deleted. Ordered by (generated_timestamp, id);
      changes of the last 60 s are left out; the response is Zendesk's
      {tickets, after_url, after_cursor, before_url, before_cursor, end_of_stream, ...};
      the last page still carries an after_cursor for the next poll. A start_time less than a
      minute old -> 400.
  GET /api/v2/organizations/show_many.json?ids=1,2   {organizations: [...]}
  GET /api/v2/organizations.json?page[size]=N&page[after]=C  cursor-paged list (<= 100)
Auth: basic `{email}/token:{token}`, else 401 {"error": "Couldn't authenticate you"}.
Faults: 429 + Retry-After (integer seconds), 503, 401, "malformed" (a ticket with a bad date).

Seeding: every account gets an organization, most with external_id = the account id (and
its domain), every fifth with its domain only; `unmatched_orgs` extra organizations match no
account (their external ids and domains are unknown) and get two tickets each. The fake's
clock (`now`) starts an hour after the portfolio's last day and moves only by `advance()`.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.sandbox.portfolio import Portfolio
from connectors.sandbox.server import Fault, Request, Response, SandboxServer

EXPORT = "/api/v2/incremental/tickets/cursor.json"
ORG_BASE = 360_000_000
END = 2**62  # id after every id: the position at the end of a second


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def encode_cursor(ts: int, ticket_id: int) -> str:
    return base64.urlsafe_b64encode(f"{ts}.0||{ticket_id}|".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, int]:
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    ts, _, rest = raw.partition("||")
    return int(float(ts)), int(rest.rstrip("|"))


@dataclass
class ZendeskSandbox:
    server: SandboxServer
    email: str
    token: str
    now: datetime
    tickets: dict[int, dict] = field(default_factory=dict)
    metrics: dict[int, dict] = field(default_factory=dict)
    orgs: dict[int, dict] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.server.url

    def stop(self) -> None:
        self.server.stop()

    def __enter__(self) -> ZendeskSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- helpers for tests -----------------------------------------------------------------

    def advance(self, seconds: float = 61) -> None:
        self.now += timedelta(seconds=seconds)

    def touch(self, ticket_id: int, at: datetime | None = None, **changes: Any) -> dict:
        """Change a ticket (status=..., priority=..., organization_id=..., tags=...,
        satisfaction_rating=...) and stamp it at `at` (default: the fake's now)."""
        t = self.tickets[ticket_id]
        t.update(changes)
        stamp = (at or self.now).replace(microsecond=0)
        t["updated_at"] = iso(stamp)
        t["generated_timestamp"] = int(stamp.timestamp())
        m = self.metrics[ticket_id]
        m["updated_at"] = t["updated_at"]
        if changes.get("status") in ("solved", "closed") and not m.get("solved_at"):
            m["solved_at"] = t["updated_at"]
        return t

    def delete_ticket(self, ticket_id: int) -> dict:
        return self.touch(ticket_id, status="deleted")

    def add_ticket(
        self,
        org_id: int,
        *,
        status: str = "open",
        priority: str = "normal",
        at: datetime | None = None,
        **extra: Any,
    ) -> dict:
        ticket_id = max(self.tickets, default=0) + 1
        created = (at or self.now).replace(microsecond=0)
        self.tickets[ticket_id] = _ticket(
            self.url, ticket_id, org_id, created, status, priority, None, False, "New ticket"
        )
        self.metrics[ticket_id] = _metric(ticket_id, created, None)
        return self.touch(ticket_id, at=created, **extra)

    def add_malformed_ticket(self, org_id: int, *, at: datetime | None = None, **bad: Any) -> dict:
        """A ticket with a broken field (default: an unparsable created_at)."""
        t = self.add_ticket(org_id, at=at)
        t.update(bad or {"created_at": "31/02/2026 25:61"})
        return t

    def org_for(self, account_id: str) -> dict:
        return next(o for o in self.orgs.values() if o.get("_account") == account_id)

    # -- HTTP ------------------------------------------------------------------------------

    def route(self, req: Request) -> Response:
        auth = req.headers.get("authorization", "")
        expected = base64.b64encode(f"{self.email}/token:{self.token}".encode()).decode()
        if auth != f"Basic {expected}":
            return Response(401, {"error": "Couldn't authenticate you"})
        if req.method != "GET":
            return _error(405, "MethodNotAllowed", f"{req.method} is not allowed here")
        if req.path == EXPORT:
            return self._export(req)
        if req.path == "/api/v2/organizations/show_many.json":
            ids = [int(x) for x in (req.arg("ids") or "").split(",") if x.strip().isdigit()]
            return _ok({"organizations": [_public(self.orgs[i]) for i in ids if i in self.orgs]})
        if req.path == "/api/v2/organizations.json":
            return self._list_orgs(req)
        return _error(404, "RecordNotFound", "Not found")

    def _export(self, req: Request) -> Response:
        horizon = int(self.now.timestamp()) - 60
        per_page = min(int(req.arg("per_page") or 1000), 1000)
        if cursor := req.arg("cursor"):
            try:
                pos = decode_cursor(cursor)
            except ValueError:
                return _error(400, "InvalidPaginationParameter", "invalid cursor")
        elif (start := req.arg("start_time")) is not None and start.lstrip("-").isdigit():
            if int(start) > horizon:
                return _error(
                    400,
                    "InvalidValue",
                    "Too recent start_time. Use a start_time older than 1 minute",
                )
            pos = (int(start), -1)
        else:
            return _error(400, "InvalidValue", "start_time or cursor is required")
        skip_deleted = req.arg("exclude_deleted") == "true"
        rows = sorted(
            (t["generated_timestamp"], i)
            for i, t in self.tickets.items()
            if pos < (t["generated_timestamp"], i)
            and t["generated_timestamp"] <= horizon
            and not (skip_deleted and t["status"] == "deleted")
        )
        page, more = rows[:per_page], len(rows) > per_page
        after = encode_cursor(*page[-1]) if more else encode_cursor(max(horizon, pos[0]), END)
        before = encode_cursor(page[0][0], page[0][1] - 1) if page else None
        tickets = [dict(self.tickets[i]) for _, i in page]
        body: dict[str, Any] = {
            "tickets": tickets,
            "after_url": f"{self.url}{EXPORT}?cursor={after}",
            "after_cursor": after,
            "before_url": f"{self.url}{EXPORT}?cursor={before}" if before else None,
            "before_cursor": before,
            "end_of_stream": not more,
        }
        include = set((req.arg("include") or "").split(","))
        if "organizations" in include:
            org_ids = sorted({t["organization_id"] for t in tickets} - {None})
            body["organizations"] = [_public(self.orgs[o]) for o in org_ids if o in self.orgs]
        if "metric_sets" in include:
            body["metric_sets"] = [dict(self.metrics[t["id"]]) for t in tickets]
        return _ok(body, limit=10)

    def _list_orgs(self, req: Request) -> Response:
        size = int(req.arg("page[size]") or 100)
        if size > 100:
            return _error(400, "InvalidPaginationParameter", "page[size] must be <= 100")
        after = int(req.arg("page[after]") or 0)
        ids = sorted(i for i in self.orgs if i > after)
        page, more = ids[:size], len(ids) > size
        last = str(page[-1]) if page else None
        return _ok(
            {
                "organizations": [_public(self.orgs[i]) for i in page],
                "meta": {"has_more": more, "after_cursor": last, "before_cursor": None},
                "links": {
                    "next": f"{self.url}/api/v2/organizations.json?page[size]={size}"
                    f"&page[after]={last}"
                    if more
                    else None,
                    "prev": None,
                },
            }
        )

    def fault(self, fault: Fault, req: Request) -> Response:
        if fault.kind == "rate_limit":
            secs = str(math.ceil(fault.retry_after or 0))
            return Response(
                429,
                {"error": "APIRateLimitExceeded", "description": "Rate limit exceeded"},
                {"Retry-After": secs, "X-Rate-Limit": "10", "X-Rate-Limit-Remaining": "0"},
            )
        if fault.kind == "server_error":
            return _error(503, "ServiceUnavailable", "Zendesk is temporarily unavailable")
        if fault.kind == "expired_token":
            return Response(401, {"error": "Couldn't authenticate you"})
        resp = self.route(req)  # "malformed": a good answer with one broken ticket
        if isinstance(resp.body, dict) and resp.body.get("tickets"):
            resp.body["tickets"][0]["created_at"] = "not-a-date"
        return resp


def _ok(body: dict, *, limit: int = 700) -> Response:
    return Response(200, body, {"X-Rate-Limit": str(limit), "X-Rate-Limit-Remaining": "1"})


def _error(status: int, error: str, description: str) -> Response:
    return Response(status, {"error": error, "description": description})


def _public(org: dict) -> dict:
    return {k: v for k, v in org.items() if not k.startswith("_")}


def _ticket(
    base: str,
    tid: int,
    org_id: int | None,
    created: datetime,
    status: str,
    priority: str,
    satisfaction: str | None,
    escalated: bool,
    subject: str,
) -> dict:
    return {
        "url": f"{base}/api/v2/tickets/{tid}.json",
        "id": tid,
        "external_id": None,
        "type": "incident" if priority == "urgent" else "question",
        "subject": subject,
        "priority": priority,
        "status": status,
        "requester_id": 9_000_000 + tid,
        "organization_id": org_id,
        "tags": ["escalated"] if escalated else [],
        "satisfaction_rating": {"score": satisfaction or "unoffered"},
        "created_at": iso(created),
        "updated_at": iso(created),
        "generated_timestamp": int(created.timestamp()),
    }


def _metric(tid: int, created: datetime, solved: datetime | None) -> dict:
    return {
        "id": 7_000_000 + tid,
        "ticket_id": tid,
        "created_at": iso(created),
        "updated_at": iso(solved or created),
        "solved_at": iso(solved) if solved else None,
        "reopens": 0,
        "replies": 1,
    }


def start_zendesk_sandbox(
    portfolio: Portfolio,
    *,
    email: str = "admin@healthbot-sandbox.test",
    token: str = "zd-sandbox-token",
    unmatched_orgs: int = 3,
    now: datetime | None = None,
) -> ZendeskSandbox:
    end = datetime(portfolio.end.year, portfolio.end.month, portfolio.end.day, tzinfo=UTC)
    clock = now or end + timedelta(days=1, hours=1)
    sb = ZendeskSandbox(server=None, email=email, token=token, now=clock)  # type: ignore[arg-type]
    sb.server = SandboxServer(sb.route, sb.fault).start()
    org_of: dict[str, int] = {}
    for i, a in enumerate(portfolio.accounts):
        org_id = ORG_BASE + i + 1
        org_of[a.external_id] = org_id
        sb.orgs[org_id] = {
            "url": f"{sb.url}/api/v2/organizations/{org_id}.json",
            "id": org_id,
            "name": a.name,
            "external_id": None if i % 5 == 4 else a.external_id,
            "domain_names": [a.domain],
            "created_at": iso(datetime(2020, 1, 1, tzinfo=UTC)),
            "updated_at": iso(datetime(2020, 1, 1, tzinfo=UTC)),
            "_account": a.external_id,
        }
    for t in portfolio.tickets:
        tid, created = int(t.external_id), t.created_at.replace(microsecond=0)
        solved = t.solved_at.replace(microsecond=0) if t.solved_at else None
        sb.tickets[tid] = _ticket(
            sb.url,
            tid,
            org_of[t.account_id],
            created,
            t.status,
            t.priority,
            t.satisfaction,
            t.escalated,
            t.subject,
        )
        sb.metrics[tid] = _metric(tid, created, solved)
        if solved:
            sb.touch(tid, at=solved)
    base = end - timedelta(days=10)
    for n in range(1, unmatched_orgs + 1):
        org_id = ORG_BASE + 900_000 + n
        sb.orgs[org_id] = {
            "url": f"{sb.url}/api/v2/organizations/{org_id}.json",
            "id": org_id,
            "name": f"Unknown Customer {n}",
            "external_id": f"ZD-UNKNOWN-{n}" if n % 2 else None,
            "domain_names": [f"unknown-customer-{n}.example"],
            "created_at": iso(base),
            "updated_at": iso(base),
        }
        sb.add_ticket(org_id, status="open", priority="urgent", at=base + timedelta(hours=n))
        sb.add_ticket(
            org_id,
            status="solved",
            at=base + timedelta(hours=n, minutes=30),
            satisfaction_rating={"score": "bad"},
        )
    return sb
