"""HubSpot as a Source: companies, renewal deals, tickets and champion contacts since the
watermark.

The design notes (what is read in which order, calls per run, the watermark, deletions)
are in docs/connectors.md, "HubSpot: the source"."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import ClassVar

from connectors.base import PermanentConnectorError
from connectors.hubspot import fields
from connectors.hubspot.client import ASSOC_LIMIT, Cursor, HubSpotClient
from connectors.hubspot.mapping import (
    CHAMPION,
    CLOSED_TICKET_STAGES,
    COMPANY_PROPS,
    CONTACT_HISTORY,
    CONTACT_LASTMOD,
    CONTACT_PROPS,
    DEAL_PROPS,
    LASTMOD,
    LEFT,
    SEV1_PRIORITIES,
    SOURCE,
    TICKET_PROPS,
    TicketState,
    archived_champion_departures,
    associated_ids,
    champion_departures,
    company_records,
    deal_outcomes,
    is_true,
    open_tickets_observation,
    owner_emails,
    parse_datetime,
    sev1_observations,
    ticket_state,
)
from health.records import Batch, ObservationRecord, RecordError, SwitchedOff
from health.settings import Settings

KINDS = ("companies", "deals", "tickets", "contacts")
ARCHIVED = ("companies", "tickets", "contacts")  # deals: outcomes are history (see above)
GROUPED = ("deals", "tickets")  # batched by associations read (1,000 ids), not by page
CURSORS = (*KINDS, *(f"archived_{k}" for k in ARCHIVED))
PROPS = {
    "companies": COMPANY_PROPS,
    "deals": DEAL_PROPS,
    "tickets": TICKET_PROPS,
    "contacts": CONTACT_PROPS,
}
NO_CHAMPIONS = (
    "champion tracking is off until the boolean contact properties healthbot_champion and "
    "healthbot_left_company exist"
)
CHAMPIONS_ONLY = ({"propertyName": CHAMPION, "operator": "EQ", "value": "true"},)


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
        self._all_tickets = False  # this run reads every live ticket (no ticket cursor)
        self.switched_off: list[SwitchedOff] = []  # custom properties the portal lacks

    @property
    def api_calls(self) -> int:
        return self.client.api_calls

    def pull(self, since: str | None) -> Iterator[Batch]:
        state = load_watermark(since)
        self._owners, self._company_tickets, self._tickets = None, {}, {}
        self._all_tickets = False
        self.switched_off = []
        for kind in KINDS:
            yield from self._pull(kind, state)
        if self.track_deletions:
            for kind in ARCHIVED:
                batch = self._archived(kind, state)
                if batch is not None:
                    yield batch

    def _pull(self, kind: str, state: dict[str, Cursor]) -> Iterator[Batch]:
        """One object type's search, as batches: a page each, or for deals and tickets as
        many pages as fill one associations read (1,000 ids). A first ticket run (no ticket
        cursor) reads every ticket: the open counts are tallied from them after the last page,
        and the ticket cursor only moves with that batch (a run killed before it re-reads the
        tickets, and nothing is counted from half of them)."""
        handlers = {
            "companies": self._companies,
            "deals": self._deals,
            "tickets": self._tickets_page,
            "contacts": self._contacts_page,
        }
        scan = self.client.scan(
            kind,
            PROPS[kind],
            state[kind],
            limit=self.page_size,
            lastmod=CONTACT_LASTMOD if kind == "contacts" else LASTMOD,
            filters=CHAMPIONS_ONLY if kind == "contacts" else (),
        )
        hold = kind == "tickets" and state[kind].ts is None
        if kind == "tickets":
            self._all_tickets = hold
        done = cursor = state[kind]  # the last cursor yielded / read
        group: list[dict] = []
        first = True

        def flush(cursor: Cursor) -> Batch | None:
            nonlocal done, group
            records, group = group, []
            if cursor == done or (hold and not records):
                return None
            done = cursor
            if not hold:
                state[kind] = cursor
            self._note(fields.missing(kind, records))
            batch = handlers[kind](records) if records else Batch()
            batch.fetched = len(records)
            batch.watermark = dump_watermark(state)
            return batch

        try:
            for page, cursor in scan:
                first = False
                group += page
                if kind in GROUPED and len(group) + self.page_size <= ASSOC_LIMIT:
                    continue
                if (batch := flush(cursor)) is not None:
                    yield batch
        except PermanentConnectorError as exc:
            # a portal without the champion property rejects the filter: go on without
            if not (kind == "contacts" and first and str(exc).startswith("HubSpot 400")):
                raise
            error = RecordError(SOURCE, "contacts", f"{NO_CHAMPIONS}: {exc}")
            self._note([fields.switched_off("contacts", CHAMPION)])
            yield Batch(errors=[error], watermark=dump_watermark(state))
            return
        if (batch := flush(cursor)) is not None:
            yield batch
        if hold and cursor != state[kind]:
            state[kind] = cursor
            counts = self._open_tickets(sorted(self._company_tickets, key=_num), {})
            yield Batch(observations=counts, fetched=0, watermark=dump_watermark(state))

    def _note(self, notices: list[SwitchedOff]) -> None:
        """Each missing custom property once per run."""
        seen = {n.field for n in self.switched_off}
        self.switched_off += [n for n in notices if n.field not in seen]

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
        if not self._all_tickets:
            self._load_company_tickets(touched)
        for tid in states:
            for c in links.get(tid, []):
                self._company_tickets.setdefault(c, set()).add(tid)
        if not self._all_tickets:  # else tallied after the last page (see _pull)
            batch.observations += self._open_tickets(touched, {})
        return batch

    def _load_company_tickets(self, companies: list[str]) -> None:
        """Which tickets each company has (v4 associations), once per company per run; none
        needed after this run has read every ticket (a company not seen with one has none)."""
        new = [c for c in companies if c not in self._company_tickets]
        if new and self._all_tickets:
            self._company_tickets.update((c, set()) for c in new)
        elif new:
            found = self.client.associations("companies", "tickets", new)
            for c in new:
                self._company_tickets[c] = set(found.get(c, []))

    def _open_tickets(
        self, companies: list[str], floors: dict[str, datetime]
    ) -> list[ObservationRecord]:
        """Re-count the companies' open tickets, batch-reading the ones not seen this run."""
        unknown = sorted(
            {t for c in companies for t in self._company_tickets[c] if t not in self._tickets},
            key=_num,
        )
        for t in unknown:
            self._tickets[t] = None  # deleted or unreadable unless the read below finds it
        for obj in self.client.batch_read("tickets", unknown, TICKET_PROPS):
            st = ticket_state(obj, closed_stages=self.closed_stages)
            if isinstance(st, TicketState):
                self._tickets[st.id] = st
        out = []
        for c in companies:
            known = [s for t in self._company_tickets[c] if (s := self._tickets.get(t))]
            if (obs := open_tickets_observation(c, known, at=floors.get(c))) is not None:
                out.append(obs)
        return out

    def _contacts_page(self, page: list[dict]) -> Batch:
        batch = Batch()
        ids = []
        for obj in page:
            if obj.get("id"):
                ids.append(str(obj["id"]))
            else:
                batch.errors.append(RecordError(SOURCE, "contact:?", "missing id"))
        found = self.client.batch_read("contacts", ids, CONTACT_PROPS, history=CONTACT_HISTORY)
        left = [str(o["id"]) for o in found if is_true((o.get("properties") or {}).get(LEFT))]
        links = self.client.associations("contacts", "companies", left) if left else {}
        for obj in found:
            out = champion_departures(obj, links.get(str(obj.get("id")), []))
            if isinstance(out, RecordError):
                batch.errors.append(out)
            else:
                batch.observations += out
        return batch

    # -- deletions -----------------------------------------------------------------------
    def _archived(self, kind: str, state: dict[str, Cursor]) -> Batch | None:
        key = f"archived_{kind}"
        cursor = state[key]
        assoc = ["companies"] if kind != "companies" else None
        fresh: list[tuple[int, str, dict, datetime]] = []
        for obj in self.client.archived(kind, PROPS[kind], associations=assoc):
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
                fresh.append((at_ms, oid, obj, at))
        if not fresh:
            return None
        fresh.sort(key=lambda f: (f[0], _num(f[1])))
        last = fresh[-1][0]
        ids = {f[1] for f in fresh if f[0] == last} | (
            set(cursor.ids) if last == cursor.ts else set()
        )
        state[key] = Cursor(last, tuple(sorted(ids, key=_num)))
        objs = [f[2] for f in fresh]
        if kind == "companies":
            batch = self._companies(objs, deleted=True)
        elif kind == "tickets":
            batch = self._archived_tickets([(f[1], f[2], f[3]) for f in fresh])
        else:
            batch = Batch()
            for obj in objs:
                out = archived_champion_departures(obj, associated_ids(obj, "companies"))
                if isinstance(out, RecordError):
                    batch.errors.append(out)
                else:
                    batch.observations += out
        batch.fetched = len(fresh)
        batch.watermark = dump_watermark(state)
        return batch

    def _archived_tickets(self, fresh: list[tuple[str, dict, datetime]]) -> Batch:
        batch, floors = Batch(), {}
        for tid, obj, at in fresh:
            self._tickets[tid] = None
            companies = associated_ids(obj, "companies")
            if not companies:
                reason = "deleted ticket has no associated company: no open_tickets re-count"
                batch.errors.append(RecordError(SOURCE, f"ticket:{tid}", reason))
            for c in companies:
                floors[c] = max(floors.get(c, at), at)
        touched = sorted(floors, key=_num)
        self._load_company_tickets(touched)
        for tid, _, _ in fresh:
            for c in touched:
                self._company_tickets[c].discard(tid)
        batch.observations += self._open_tickets(touched, floors)
        return batch


def _num(value: str) -> int:
    return int(value) if value.isdigit() else 0


def load_watermark(since: str | None) -> dict[str, Cursor]:
    try:
        data = json.loads(since) if since else {}
    except ValueError as exc:
        raise PermanentConnectorError(f"unreadable HubSpot watermark {since!r}") from exc
    if data.get("v", 1) == 1 and "archived" in data:
        data["archived_companies"] = data["archived"]
    return {k: Cursor.from_json(data.get(k)) for k in CURSORS}


def dump_watermark(state: dict[str, Cursor]) -> str:
    return json.dumps({"v": 2, **{k: c.as_json() for k, c in state.items()}}, sort_keys=True)


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
