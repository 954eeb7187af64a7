"""The call plan bench/sync.py measures against: per vendor, how its fake's requests are
classified by kind, and how many of each kind the documented page sizes need (VENDORS.md §2)
for the rows a sync must read. Imported by bench/sync.py (bench/ is not a package)."""

from __future__ import annotations

import math
import re
from collections import Counter

from connectors.hubspot.client import NOT_IN_LIMIT
from connectors.sandbox.hubspot_store import lastmod_of, ms
from connectors.stripe.source import EVENT_TYPES, FEW

SF_STREAMS = ("Account", "Contract", "Opportunity", "Case", "Task", "Event", "Contact")
SF_SRC, HS_SRC = "connectors/salesforce/source.py", "connectors/hubspot/source.py"
REREAD, COUNT = "Account re-read (check)", "Case COUNT open (check)"
CO_TICKETS, TICKET_READ = "assoc companies->tickets (check)", "tickets/batch/read (check)"
HS_KINDS = ("companies", "deals", "tickets", "contacts")
HS_ARCHIVED = ("companies", "tickets", "contacts")  # deals: the connector reads no deletions
CHECKS = {  # what incremental checks need: 0 on a full run (it reads every record) but archived
    REREAD: "Accounts of changed Contracts, ceil(accounts/300) (the connector's IN-list size)",
    COUNT: "COUNT of open Cases of accounts whose Cases changed, ceil(accounts/300); a first "
    "sync tallies them from the Case pages it reads",
    "<Salesforce stream> (saved second)": "SOQL compares datetimes to the second: an incremental "
    "query re-reads the records of the saved second (counted in its rows; no extra page unless "
    "more than a page of records share that second)",
    "archived <type> (check)": "deletions: max(1, ceil(archived/100)) per list, every run",
    CO_TICKETS: "open_tickets: touched companies' ticket ids, ceil(companies/1000) per 1,000 "
    "changed tickets; a first sync tallies them from the ticket pages it reads",
    TICKET_READ: "open_tickets: touched companies' tickets not read in the run, ceil(n/100)",
    "<HubSpot type>/search (saved instant)": "an incremental search excludes the ids stored at "
    "the saved instant (NOT_IN); when more than 100 share it, it re-reads them (counted in rows)",
}
WHERE = {  # request kind -> the connector code that issues it
    REREAD: f"{SF_SRC} SalesforceSource._contracts",
    COUNT: f"{SF_SRC} SalesforceSource._open_counts (from _cases)",
    "assoc deals->companies": f"{HS_SRC} HubSpotSource._deals: 1 call per 1,000 deals",
    "assoc tickets->companies": f"{HS_SRC} HubSpotSource._tickets_page: 1 per 1,000 tickets",
    CO_TICKETS: f"{HS_SRC} HubSpotSource._tickets_page (incremental runs)",
    TICKET_READ: f"{HS_SRC} HubSpotSource._open_tickets -> HubSpotClient.batch_read",
}
SEARCH = "connectors/hubspot/client.py HubSpotClient.scan (> NOT_IN_LIMIT ties re-read)"
SOQL = f"{SF_SRC} SalesforceSource._soql (SystemModstamp >= the saved second re-reads it)"
_FROM = re.compile(r" FROM (\w+)")


def pages(rows: int, size: int) -> int:
    return max(1, math.ceil(rows / size))


def sf_kinds(requests) -> Counter:
    """Salesforce requests by kind; a queryMore counts for the stream last queried."""
    out, stream = Counter(), "?"
    for r in requests:
        q = r.arg("q")
        if r.path.endswith("/describe"):
            out["describe"] += 1
        elif q is None:
            out[stream] += 1
        elif "COUNT(" in q:
            out[COUNT] += 1
        elif " Id IN " in q:
            out[REREAD] += 1
        else:
            stream = _FROM.findall(q)[-1]  # the last FROM: Account's has a Contracts subquery
            out[stream] += 1
    return out


def hs_kinds(requests) -> Counter:
    rename = {"assoc companies->tickets": CO_TICKETS, "tickets/batch/read": TICKET_READ}
    out = Counter()
    for r in requests:
        kind = r.path.rstrip("/").removeprefix("/crm/v3/objects/").removeprefix("/crm/v3/")
        if m := re.match(r"/crm/v4/associations/(\w+)/(\w+)/", r.path):
            kind = f"assoc {m[1]}->{m[2]}"
        elif r.method == "GET" and (r.arg("archived") or "").lower() == "true":
            kind = f"archived {kind} (check)"
        out[rename.get(kind, kind)] += 1
    return out


def sf_need(
    rows: Counter, *, children: int, first: bool = False, reread: int = 0, counted: int = 0
) -> dict[str, int]:
    """children: Contract rows read as Account child rows; first: a sync with no watermark."""
    need = {"describe": len(SF_STREAMS), **{o: pages(rows[o], 2000) for o in SF_STREAMS}}
    need["Account"] = pages(rows["Account"] + children, 2000)
    if first:
        need["Contract"] = 0
    return need | {REREAD: math.ceil(reread / 300), COUNT: math.ceil(counted / 300)}


def sf_saved_second(db: dict) -> dict[str, set[str]]:
    """Records an incremental query re-reads: those of each stream's newest second."""
    out = {}
    for obj in SF_STREAMS:
        newest = max((r["SystemModstamp"][:19] for r in db[obj].values()), default=None)
        out[obj] = {i for i, r in db[obj].items() if r["SystemModstamp"][:19] == newest}
    return out


def hs_saved_ties(st) -> Counter:
    """Records an incremental search re-reads: those of each type's newest instant, when
    more share it than one NOT_IN filter excludes."""
    out = Counter()
    for k in HS_KINDS:
        stamps = Counter(o["properties"][lastmod_of(k)] for o in st.objects[k].values())
        newest = max(stamps, key=ms, default=None)
        out[k] = stamps[newest] if newest and stamps[newest] > NOT_IN_LIMIT else 0
    return out


def hs_need(hs, rows: Counter, touched: int, unread_tickets: int) -> dict[str, int]:
    need = {f"{k}/search": pages(rows[k], 200) for k in HS_KINDS}
    need["contacts/batch/read"] = math.ceil(rows["contacts"] / 50)  # with property history
    need |= {f"archived {k} (check)": pages(len(hs.store.archived[k]), 100) for k in HS_ARCHIVED}
    return need | {
        "owners": math.ceil(len(hs.store.owners) / 500) if rows["companies"] else 0,
        "assoc deals->companies": math.ceil(rows["deals"] / 1000),
        "assoc tickets->companies": math.ceil(rows["tickets"] / 1000),
        CO_TICKETS: math.ceil(touched / 1000),
        TICKET_READ: math.ceil(unread_tickets / 100),
    }


# --- Stripe: every list at 100 a page (the newest event: limit 1) -----------------------

STRIPE_LISTS = ("subscriptions", "customers", "invoices", "charges")


def stripe_kinds(requests) -> Counter:
    out = Counter()
    for r in requests:
        kind = r.path.removeprefix("/v1/")
        if kind == "events" and r.arg("limit") == "1":
            kind = "events (newest)"
        elif kind == "invoices" and r.arg("status") == "open":
            kind = "invoices (open)"
        out[kind] += 1
    return out


def stripe_need_full(st) -> tuple[dict[str, int], Counter]:
    """A first sync: the newest event, then every subscription, customer, invoice and charge."""
    rows = Counter({k: len(st.objects[k]) for k in STRIPE_LISTS})
    return {"events (newest)": 1, **{k: pages(rows[k], 100) for k in STRIPE_LISTS}}, rows


def stripe_need_incremental(st, mark: int) -> tuple[dict, Counter]:
    """A later sync: the events since `mark` (that second included, so events of the saved
    second count again), the subscriptions of the customers those events changed (a list each,
    or all of them for more than FEW), the open invoices always."""
    kept = [e for e in st.objects["events"].values() if e["type"] in EVENT_TYPES]
    read = [e for e in kept if e["created"] >= mark]
    customers = {
        obj["customer"] if e["type"].startswith("customer.subscription.") else obj["id"]
        for e in read
        if e["type"].startswith("customer.") and (obj := e["data"]["object"])
    }
    rows = Counter(events=len(read), customers_changed=len(customers), open_invoices=sum(
        1 for i in st.objects["invoices"].values() if i["status"] == "open"
    ))  # fmt: skip
    need = {"events": pages(len(read), 100), "invoices (open)": pages(rows["open_invoices"], 100)}
    if len(customers) > FEW:
        rows["subscriptions"] = len(st.objects["subscriptions"])
        need["subscriptions"] = pages(rows["subscriptions"], 100)
    elif customers:
        need["subscriptions"] = len(customers)  # one page each (a customer has a few)
    return need, rows
