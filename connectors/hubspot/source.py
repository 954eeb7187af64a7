"""HubSpot as a Source: companies, renewal deals and tickets since the watermark.

One pass, in this order (so observations always follow the accounts they reference):
companies, deals, tickets — each through the CRM search API on `hs_lastmodifieddate`
(ascending, 200 per page, re-windowed past the 10,000-result cap; the first run uses the same
search without a filter: 200 records per call against the list endpoint's 100) — and last
the archived companies (list endpoint, `archived=true`) as deletions.
One Batch per search page; its watermark covers exactly that page.

Watermark (JSON): `{"v": 1, "companies": {"ts": <epoch ms>, "ids": [...]}, "deals": {...},
"tickets": {...}, "archived": {...}}` — per object type, the hs_lastmodifieddate (archivedAt
for deletions) of the newest record stored, and the ids already stored at exactly that
instant. A rerun resumes with `GTE ts` and drops those ids.

Calls per run: companies/deals/tickets `ceil(changed/200)` searches each (at least 1), 1 owners
call when a company page needs owners, per deal page 1 associations call, per ticket page
1-2 associations calls plus batch reads (100 per call) of the touched companies' other
tickets (each read once per run) for the open_tickets snapshot, and `ceil(archived/100)`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import ClassVar

from connectors.base import PermanentConnectorError
from connectors.hubspot.client import Cursor, HubSpotClient
from connectors.hubspot.mapping import (
    CLOSED_TICKET_STAGES,
    COMPANY_PROPS,
    DEAL_PROPS,
    SEV1_PRIORITIES,
    SOURCE,
    TICKET_PROPS,
    TicketState,
    company_records,
    deal_outcomes,
    open_tickets_observation,
    owner_emails,
    parse_datetime,
    sev1_observations,
    ticket_state,
)
from health.records import Batch, RecordError
from health.settings import Settings

KINDS = ("companies", "deals", "tickets")


class HubSpotSource:
    name: ClassVar[str] = SOURCE

    def __init__(
        self,
        client: HubSpotClient,
        *,
        page_size: int = 200,
        renewal_pipeline: str | None = None,
        sev1_priorities: frozenset[str] = SEV1_PRIORITIES,
        closed_ticket_stages: frozenset[str] = CLOSED_TICKET_STAGES,
        track_deletions: bool = True,
    ):
        self.client = client
        self.page_size = page_size
        self.renewal_pipeline = renewal_pipeline
        self.sev1 = frozenset(p.upper() for p in sev1_priorities)
        self.closed_stages = frozenset(closed_ticket_stages)
        self.track_deletions = track_deletions
        self._owners: dict[str, str] | None = None
        self._company_tickets: dict[str, set[str]] = {}
        self._tickets: dict[str, TicketState | None] = {}

    @property
    def api_calls(self) -> int:
        return self.client.api_calls

    def pull(self, since: str | None) -> Iterator[Batch]:
        state = load_watermark(since)
        self._owners, self._company_tickets, self._tickets = None, {}, {}
        handlers = {
            "companies": self._companies,
            "deals": self._deals,
            "tickets": self._tickets_page,
        }
        props = {"companies": COMPANY_PROPS, "deals": DEAL_PROPS, "tickets": TICKET_PROPS}
        for kind in KINDS:
            before = state[kind]
            for page, cursor in self.client.scan(kind, props[kind], before, limit=self.page_size):
                if not page and cursor == state[kind]:
                    continue
                state[kind] = cursor
                batch = handlers[kind](page) if page else Batch()
                batch.fetched = len(page)
                batch.watermark = dump_watermark(state)
                yield batch
        if self.track_deletions:
            batch = self._archived(state)
            if batch is not None:
                yield batch

    # -- pages ---------------------------------------------------------------------------
    def _owner_map(self) -> dict[str, str]:
        if self._owners is None:
            self._owners = owner_emails(self.client.owners())
        return self._owners

    def _companies(self, page: list[dict], *, deleted: bool = False) -> Batch:
        batch = Batch()
        owners = (
            self._owner_map()
            if any((o.get("properties") or {}).get("hubspot_owner_id") for o in page)
            else {}
        )
        for obj in page:
            out = company_records(obj, owners, deleted=deleted)
            if isinstance(out, RecordError):
                batch.errors.append(out)
                continue
            batch.accounts.append(out[0])
            batch.observations += out[1]
        return batch

    def _deals(self, page: list[dict]) -> Batch:
        batch = Batch()
        links = self.client.associations(
            "deals", "companies", [str(o.get("id")) for o in page if o.get("id")]
        )
        for obj in page:
            out = deal_outcomes(
                obj, links.get(str(obj.get("id")), []), renewal_pipeline=self.renewal_pipeline
            )
            if isinstance(out, RecordError):
                batch.errors.append(out)
            else:
                batch.outcomes += out
        return batch

    def _tickets_page(self, page: list[dict]) -> Batch:
        batch = Batch()
        states: dict[str, TicketState] = {}
        for obj in page:
            st = ticket_state(obj, closed_stages=self.closed_stages)
            if isinstance(st, RecordError):
                batch.errors.append(st)
            else:
                states[st.id] = st
        links = self.client.associations("tickets", "companies", list(states))
        for tid, st in states.items():
            self._tickets[tid] = st
            companies = links.get(tid, [])
            if not companies:
                batch.errors.append(RecordError(SOURCE, f"ticket:{tid}", "no associated company"))
            batch.observations += sev1_observations(st, companies, sev1=self.sev1)
        touched = sorted({c for cs in links.values() for c in cs}, key=_num)
        new = [c for c in touched if c not in self._company_tickets]
        if new:
            found = self.client.associations("companies", "tickets", new)
            for c in new:
                self._company_tickets[c] = set(found.get(c, []))
        for tid in states:
            for c in links.get(tid, []):
                self._company_tickets[c].add(tid)
        unknown = sorted(
            {t for c in touched for t in self._company_tickets[c] if t not in self._tickets},
            key=_num,
        )
        for t in unknown:
            self._tickets[t] = None  # deleted or unreadable unless the read below finds it
        for obj in self.client.batch_read("tickets", unknown, TICKET_PROPS):
            st = ticket_state(obj, closed_stages=self.closed_stages)
            if isinstance(st, TicketState):
                self._tickets[st.id] = st
        for c in touched:
            known = [s for t in self._company_tickets[c] if (s := self._tickets.get(t))]
            if (obs := open_tickets_observation(c, known)) is not None:
                batch.observations.append(obs)
        return batch

    def _archived(self, state: dict) -> Batch | None:
        cursor: Cursor = state["archived"]
        fresh: list[tuple[int, str, dict]] = []
        for obj in self.client.archived("companies", COMPANY_PROPS):
            try:
                at = parse_datetime(obj.get("archivedAt"))
            except ValueError:
                at = None
            oid = str(obj.get("id") or "")
            if at is None or not oid:
                continue
            at_ms = int(at.timestamp() * 1000)
            if (
                cursor.ts is None
                or at_ms > cursor.ts
                or (at_ms == cursor.ts and oid not in cursor.ids)
            ):
                fresh.append((at_ms, oid, obj))
        if not fresh:
            return None
        fresh.sort(key=lambda f: (f[0], _num(f[1])))
        last = fresh[-1][0]
        ids = {f[1] for f in fresh if f[0] == last} | (
            set(cursor.ids) if last == cursor.ts else set()
        )
        state["archived"] = Cursor(last, tuple(sorted(ids, key=_num)))
        batch = self._companies([f[2] for f in fresh], deleted=True)
        batch.fetched = len(fresh)
        batch.watermark = dump_watermark(state)
        return batch


def _num(value: str) -> int:
    return int(value) if value.isdigit() else 0


def load_watermark(since: str | None) -> dict[str, Cursor]:
    try:
        data = json.loads(since) if since else {}
    except ValueError as exc:
        raise PermanentConnectorError(f"unreadable HubSpot watermark {since!r}") from exc
    return {k: Cursor.from_json(data.get(k)) for k in (*KINDS, "archived")}


def dump_watermark(state: dict[str, Cursor]) -> str:
    return json.dumps({"v": 1, **{k: c.as_json() for k, c in state.items()}}, sort_keys=True)


def is_configured(settings: Settings) -> bool:
    return settings.hubspot_access_token is not None


def build_client(settings: Settings, **opts) -> HubSpotClient:
    if settings.hubspot_access_token is None:
        raise PermanentConnectorError("HubSpot is not configured: set HUBSPOT_ACCESS_TOKEN")
    return HubSpotClient(
        access_token=settings.hubspot_access_token.get_secret_value(),
        base_url=settings.hubspot_base_url,
        ca_bundle=settings.requests_ca_bundle,
        **opts,
    )


def build_source(settings: Settings, **opts) -> HubSpotSource:
    """`opts` go to HubSpotSource (page_size, renewal_pipeline, ...) or, under `client`,
    to HubSpotClient (timeout, max_retries, sleep, ...)."""
    client_opts = opts.pop("client", {})
    return HubSpotSource(build_client(settings, **client_opts), **opts)
