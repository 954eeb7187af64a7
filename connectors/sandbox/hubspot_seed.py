"""Seeding the HubSpot fake from a sandbox Portfolio: owners, companies (optionally with the
Salesforce integration's `salesforceaccountid`, and duplicate companies), renewal deals,
tickets, and contacts whose champions may leave. `HubSpotStore.seed` calls `seed` here."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import timedelta

from connectors.sandbox.hubspot_store import (
    COMPANY_ID_BASE,
    CONTACT_ID_BASE,
    DAY_MS,
    DEAL_ID_BASE,
    OWNER_ID_BASE,
    SALESFORCE_ACCOUNT_ID,
    TICKET_PRIORITY,
    TICKET_STAGE,
    HubSpotStore,
    iso,
    ms,
    spread,
)


def seed(
    store: HubSpotStore,
    portfolio,
    *,
    salesforce_ids: Mapping[str, str] | None = None,
    duplicates: Iterable[str] = (),
) -> dict[str, str]:
    """Load a Portfolio; returns {portfolio account external_id: HubSpot company id}.

    `salesforce_ids` (portfolio id -> Salesforce Account Id): the portal has the
    Salesforce integration's `salesforceaccountid` property, set on those companies.
    `duplicates` (portfolio ids): each of those companies gets a second company with the
    same domain, after all the others (ids in `store.duplicates`: duplicate -> original).
    Without either, the store is seeded exactly as before."""
    if salesforce_ids is not None:
        store.define(
            "companies",
            SALESFORCE_ACCOUNT_ID,
            "Salesforce Account ID",
            "string",
            "text",
            group="salesforceinformation",
        )
    links = salesforce_ids or {}
    owner_ids: dict[str, str] = {}
    for email in sorted({a.owner for a in portfolio.accounts}):
        oid = str(OWNER_ID_BASE + len(owner_ids) + 1)
        owner_ids[email] = oid
        first = email.split("@")[0].split(".")
        store.owners.append(
            {
                "id": oid,
                "email": email,
                "firstName": first[0].title(),
                "lastName": first[-1].title(),
                "userId": int(oid) + 1000,
                "createdAt": iso(0),
                "updatedAt": iso(0),
                "archived": False,
            }
        )
    touches: dict[str, list] = {}
    for t in portfolio.touches:
        touches.setdefault(t.account_id, []).append(t)
    ids = {a.external_id: str(COMPANY_ID_BASE + i + 1) for i, a in enumerate(portfolio.accounts)}
    horizon = ms(portfolio.end + timedelta(days=1))
    for a in portfolio.accounts:
        ts = touches.get(a.external_id, [])
        last = max((t.occurred_at for t in ts), default=None)
        execs = [t.occurred_at for t in ts if t.executive and t.kind == "meeting"]
        created = ms(a.customer_since)
        cid = ids[a.external_id]
        touched = ms(last) + spread(cid, 60_000) if last else created + spread(cid, DAY_MS)
        store.put(
            "companies",
            ids[a.external_id],
            {
                "name": a.name,
                "domain": a.domain,
                "hubspot_owner_id": owner_ids[a.owner],
                "healthbot_external_id": a.external_id,
                "healthbot_segment": a.segment,
                "healthbot_arr": f"{a.arr:.2f}",
                "numberofemployees": str(a.seats),
                "healthbot_renewal_date": a.renewal_date.isoformat(),
                "hs_lifecyclestage_customer_date": iso(created),
                "lifecyclestage": "customer",
                "notes_last_contacted": iso(ms(last)) if last else None,
                "healthbot_last_exec_meeting": iso(ms(max(execs))) if execs else None,
                SALESFORCE_ACCOUNT_ID: links.get(a.external_id),
            },
            created_ms=created,
            modified_ms=min(max(created, touched), horizon - 1),
        )
    _seed_duplicates(store, portfolio, ids, owner_ids, list(duplicates), horizon)
    for n, r in enumerate(portfolio.renewals, start=1):
        did = str(DEAL_ID_BASE + n)
        won = r.outcome in ("renewed", "expanded")
        closed = ms(r.close_date)
        # closed: edited on its close day; open: last edited some time in the last 90 days
        modified = (
            min(closed + spread(did, DAY_MS), horizon - 1 - spread(did, DAY_MS))
            if r.outcome != "open"
            else horizon - 1 - spread(did, 90 * DAY_MS)
        )
        store.put(
            "deals",
            did,
            {
                "dealname": f"Renewal {r.close_date.year}",
                "pipeline": "renewals",
                "dealstage": {"open": "contractsent", "churned": "closedlost"}.get(
                    r.outcome, "closedwon"
                ),
                "dealtype": "expansion" if r.outcome == "expanded" else "existingbusiness",
                "amount": f"{(r.prior_amount if r.outcome == 'churned' else r.amount):.2f}",
                "healthbot_prior_amount": f"{r.prior_amount:.2f}",
                "closedate": iso(closed),
                "healthbot_external_id": r.external_id,
                "hs_is_closed_won": "true" if won else "false",
            },
            created_ms=min(closed - 90 * DAY_MS, modified),
            modified_ms=modified,
        )
        store.associate("deals", did, "companies", ids[r.account_id])
    for t in portfolio.tickets:
        created, solved = ms(t.created_at), ms(t.solved_at) if t.solved_at else None
        store.put(
            "tickets",
            t.external_id,
            {
                "subject": t.subject,
                "hs_pipeline": "0",
                "hs_pipeline_stage": TICKET_STAGE[t.status],
                "hs_ticket_priority": TICKET_PRIORITY[t.priority],
                "closed_date": iso(solved) if solved and TICKET_STAGE[t.status] == "4" else None,
            },
            created_ms=created,
            modified_ms=min(solved or created + spread(t.external_id, 3_600_000), horizon - 1),
        )
        store.associate("tickets", t.external_id, "companies", ids[t.account_id])
    _seed_contacts(store, portfolio, ids)
    store.now_ms = max(store.now_ms, horizon)
    return ids


def _seed_duplicates(
    store: HubSpotStore,
    portfolio,
    ids: dict[str, str],
    owners: dict[str, str],
    which: list,
    horizon: int,
) -> None:
    """A second company for each of `which`, with the same domain and name but none of its
    deals, tickets or contacts: someone made it a month after the original (or just before
    the horizon), and logged a call on it two days before the horizon."""
    by_id = {a.external_id: a for a in portfolio.accounts}
    base = COMPANY_ID_BASE + len(portfolio.accounts)
    for n, ext in enumerate(which, start=1):
        a, cid = by_id[ext], str(base + n)
        created = min(ms(a.customer_since) + 30 * DAY_MS, horizon - 1)
        store.put(
            "companies",
            cid,
            {
                "name": a.name,
                "domain": a.domain,
                "hubspot_owner_id": owners[a.owner],
                "healthbot_segment": a.segment,
                "lifecyclestage": "customer",
                "notes_last_contacted": iso(max(created, horizon - 2 * DAY_MS)),
            },
            created_ms=created,
            modified_ms=max(created, horizon - 2 * DAY_MS),
        )
        store.duplicates[cid] = ids[ext]


def _seed_contacts(store: HubSpotStore, portfolio, ids: dict[str, str]) -> None:
    """Contacts join at their company's customer_since (last modified that morning, UTC);
    one who left gets `healthbot_left_company = true` during the morning of the left date
    (its last write)."""
    since = {a.external_id: ms(a.customer_since) for a in portfolio.accounts}
    for n, c in enumerate(portfolio.contacts, start=1):
        cid, company = str(CONTACT_ID_BASE + n), ids[c.account_id]
        first, _, last = c.name.partition(" ")
        store.contact_ids[c.external_id] = cid
        store.put(
            "contacts",
            cid,
            {
                "email": c.email,
                "firstname": first,
                "lastname": last,
                "jobtitle": c.title,
                "healthbot_champion": "true" if c.is_champion else "false",
                "associatedcompanyid": company,
            },
            created_ms=since[c.account_id],
            modified_ms=since[c.account_id] + spread(cid, DAY_MS // 2),
        )
        store.associate("contacts", cid, "companies", company)
        if c.left_on is not None:
            left_ms = ms(c.left_on) + spread(f"{cid}-left", DAY_MS // 2)
            left = max(left_ms, since[c.account_id] + DAY_MS // 2)
            store.update("contacts", cid, {"healthbot_left_company": "true"}, modified_ms=left)
