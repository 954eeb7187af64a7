"""Benchmark a full, then an incremental, sync through the sandbox Salesforce, HubSpot and
Stripe.

    python bench/sync.py [--accounts N] [--days D] [--layout split|both] [--overlap-every K]
                         [--duplicates M] [--url PG_ADMIN_URL]

--layout split (default) lays generate_portfolio(N, days=D) out as the demo does
(cli.demo_sync.crm_layout: account i in HubSpot when i % 4 == 3, else Salesforce, and in both
when i % K == 0 (K=10: one account in ten), half of those carrying their Salesforce Account Id
on the HubSpot company (`salesforceaccountid`), half sharing only the domain; M HubSpot
companies get a duplicate with their domain, left for review); `both` serves all N from each
CRM (linked by domain).
The fakes hold accounts (+ a Contract each in Salesforce), renewals and cases/tickets, but no
touches or contacts (Salesforce's Task, Event and Contact queries come back empty). Database:
SQLite in a temp dir, or one created (and dropped) on the PostgreSQL server of --url. Then a
few records change and a second sync runs from the watermarks with fresh sources (as a new
process would: Salesforce describes again). Requests, counted by the fakes per kind, show as
[made, needed]. min_calls: the documented page sizes (VENDORS.md §2) over the rows each read
must return: Salesforce 7 describes + max(1, ceil(rows/2000)) per SOQL stream, where the Account
query's rows include its Contract child rows (they count toward the page) and a first sync sends
no Contract query (those child rows are every Contract); HubSpot max(1,
ceil(rows/200)) per search (rows include the records sharing the saved instant when more than
100 do: see NOT_IN_LIMIT), ceil(rows/1000) per v4 association read, ceil(owners/500),
ceil(contacts/50) history batch reads; Stripe (customers attached by metadata id, two in three
Salesforce accounts, else by email domain) 1 newest-event read + ceil(rows/100) per list on a
first sync, then ceil(events/100) + ceil(open invoices/100) (+ ceil(subscriptions/100) when a
customer changed). The call plan lives in bench/sync_plan.py.
check_calls: kinds marked "check" (CHECKS). excess = api_calls - min_calls - check_calls.

Linking (health.identity.link_records, once per batch of accounts a source yields): database
statements counted with a `before_cursor_execute` listener, per batch, against the records in
the batch (`db_statements`); a last phase stamps `salesforceaccountid` on the companies that
were linked by domain (as HubSpot's Salesforce integration does once it syncs them) and syncs
HubSpot again. At the end: CRM records, accounts (live, not merged), how records were linked.
Progress on stderr; the last stdout line is JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from dataclasses import replace
from datetime import date, timedelta

import psycopg
from psycopg import sql
from sqlalchemy import event, func, select
from sqlalchemy.engine import make_url
from sync_plan import (  # bench/sync_plan.py
    CHECKS,
    HS_KINDS,
    SEARCH,
    SF_STREAMS,
    SOQL,
    WHERE,
    hs_kinds,
    hs_need,
    hs_saved_ties,
    sf_kinds,
    sf_need,
    sf_saved_second,
    stripe_kinds,
    stripe_need_full,
    stripe_need_incremental,
)

import health.repo
from cli.demo_sync import (
    CrmLayout,
    crm_layout,
    sandbox_settings,
    start_crm_sandboxes,
    stripe_crm_ids,
)
from connectors.hubspot.mapping import SALESFORCE_ACCOUNT_ID
from connectors.registry import enabled_sources
from connectors.sandbox.hubspot_store import iso
from connectors.sandbox.portfolio import generate_portfolio
from connectors.sandbox.stripe_api import start_stripe_sandbox
from health.db import make_engine, session_scope
from health.ingest import ingest
from health.migrate import upgrade
from health.models import Account, CrmRecord
from health.settings import Settings

DB = "healthbot_bench_sync"
T0 = time.perf_counter()


def say(msg: str) -> None:
    print(f"[sync {time.perf_counter() - T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


def tally(report, made: Counter, need: dict[str, int], rows: Counter) -> dict:
    calls = sum(made.values())
    if calls != report.api_calls:
        say(f"  warning: the fake saw {calls} requests, the source counted {report.api_calls}")
    checks = sum(n for k, n in need.items() if k.endswith("(check)"))
    low = sum(need.values()) - checks
    excess = {k: made[k] - need.get(k, 0) for k in made if made[k] > need.get(k, 0)}
    for k, n in excess.items():
        where = SEARCH if "/search" in k else SOQL if k in SF_STREAMS else "not in the plan"
        say(f"  excess {n} x {k}: {WHERE.get(k, where)}")
    return {
        "records": report.fetched,
        "api_calls": report.api_calls,
        "min_calls": low,
        "check_calls": checks,
        "excess": calls - low - checks,
        "seconds": round(report.seconds, 2),
        "rows": dict(rows),
        "requests": {k: [made.get(k, 0), need.get(k, 0)] for k in sorted(set(made) | set(need))},
        "excess_by_kind": excess,
    }


class LinkMeter:
    """Database statements on `engine`: all of them, and those issued inside
    health.identity.link_records (as health.repo.store_batch calls it, once per batch of
    accounts), per call with the number of records it linked."""

    def __init__(self, engine):
        self.statements = 0
        self.calls: list[tuple[int, int]] = []  # (records, statements) per link_records call
        self._inside: int | None = None
        self._link = health.repo.link_records
        event.listen(engine, "before_cursor_execute", self._count)
        health.repo.link_records = self._linking

    def _count(self, conn, cursor, statement, parameters, context, executemany) -> None:
        self.statements += 1
        if self._inside is not None:
            self._inside += 1

    def _linking(self, *, session, records, **kw):
        self._inside = 0
        try:
            return self._link(session=session, records=records, **kw)
        finally:
            self.calls.append((len(records), self._inside))
            self._inside = None

    def take(self) -> dict:
        """What was counted since the last take, then start again."""
        calls, total = self.calls, self.statements
        self.calls, self.statements = [], 0
        per = [n for _, n in calls]
        records = sum(r for r, _ in calls)
        return {
            "statements": total,
            "linking": {
                "batches": len(calls),
                "records": records,
                "statements": sum(per),
                "records_per_batch_max": max((r for r, _ in calls), default=0),
                "statements_per_batch": {
                    "min": min(per, default=0),
                    "max": max(per, default=0),
                    "mean": round(sum(per) / len(per), 1) if per else 0,
                },
                "statements_per_1000_records": round(1000 * sum(per) / records, 1)
                if records
                else 0,
            },
        }


def run_sync(
    engine, settings: Settings, servers: dict, needs: dict, meter: LinkMeter
) -> tuple[dict, float]:
    started, out = time.perf_counter(), {}
    for name, (server, kinds) in servers.items():
        server.reset_counts()
        meter.take()
        report = ingest(
            engine, enabled_sources(settings, only=name)[0], primary=settings.primary_crm
        )
        db = meter.take()
        link = db["linking"]
        say(
            f"{name}: {report.fetched:,} records, {report.api_calls} calls, "
            f"{report.seconds:.1f}s; {db['statements']:,} statements, linking "
            f"{link['records']:,} records in {link['batches']} batches took "
            f"{link['statements']} ({link['statements_per_batch']['max']} per batch at most)"
        )
        out[name] = tally(report, kinds(server.requests), *needs[name]) | {"db": db}
    return out, round(time.perf_counter() - started, 2)


def late_cross_refs(engine, settings: Settings, hs, layout: CrmLayout, meter: LinkMeter) -> dict:
    """HubSpot's Salesforce integration stamps the Salesforce Account Id on the companies that
    were linked by domain; a HubSpot sync reads them again. Their account does not change."""
    ids = sorted(layout.by_domain)
    for ext in ids:
        hs.modify("companies", hs.company_ids[ext], **{SALESFORCE_ACCOUNT_ID: ext})
    meter.take()
    report = ingest(
        engine, enabled_sources(settings, only="hubspot")[0], primary=settings.primary_crm
    )
    db = meter.take()
    say(
        f"late cross-references: {len(ids):,} companies re-read, linking took "
        f"{db['linking']['statements']:,} statements in {db['linking']['batches']} batches"
    )
    return {"companies": len(ids), "api_calls": report.api_calls, "db": db}


def identity_counts(engine) -> dict:
    with session_scope(engine) as session:
        records = session.scalar(select(func.count()).select_from(CrmRecord))
        accounts = session.scalar(
            select(func.count())
            .select_from(Account)
            .where(Account.merged_into.is_(None), Account.deleted_at.is_(None))
        )
        by = dict(
            session.execute(
                select(CrmRecord.linked_by, func.count()).group_by(CrmRecord.linked_by)
            ).all()
        )
        review = session.scalar(
            select(func.count()).select_from(CrmRecord).where(CrmRecord.review.is_not(None))
        )
    return {"crm_records": records, "accounts": accounts, "linked": by | {"review": review}}


def modify_stripe(st) -> tuple[dict, object]:
    """Two overdue invoices paid, a card payment failing, a customer renamed."""
    mark = max(e["created"] for e in st.objects["events"].values())
    invoices = st.objects["invoices"].values()
    for inv in sorted((i for i in invoices if i["status"] == "open"), key=lambda i: i["id"])[:2]:
        st.pay(inv["id"])
    st.fail_payment(next(i["id"] for i in invoices if i["status"] == "paid"))
    cus = st.objects["customers"][min(st.objects["customers"])]
    cus["name"] = f"{cus['name']} (renamed)"
    st.emit("customer.updated", cus, st.tick())
    return stripe_need_incremental(st, mark)


def modify(sf, hs, st) -> dict:
    """Change a handful of records in each fake; (needed calls, rows) per source."""
    db, st_hs = sf.db, hs.store
    saved = sf_saved_second(db)
    hs_ties = hs_saved_ties(hs.store)
    accounts = sorted(db["Account"])[:2]
    for a in accounts:
        sf.modify("Account", a, ARR__c=(db["Account"][a]["ARR__c"] or 0) + 1000)
    con = next(c for c, r in sorted(db["Contract"].items()) if r["AccountId"] not in accounts)
    end = date.fromisoformat(db["Contract"][con]["EndDate"]) + timedelta(days=365)
    sf.modify("Contract", con, EndDate=end.isoformat())
    cases = [c for c, r in sorted(db["Case"].items()) if not r["IsClosed"]][:2]
    for c in cases:
        rec = sf.modify("Case", c, IsClosed=True, Status="Closed")
        rec["ClosedDate"] = rec["SystemModstamp"]
    opp = next(o for o, r in sorted(db["Opportunity"].items()) if not r["IsClosed"])
    sf.modify("Opportunity", opp, IsClosed=True, IsWon=True, StageName="Closed Won")
    reread = {db["Contract"][con]["AccountId"]} - set(accounts)
    case_accounts = {db["Case"][c]["AccountId"] for c in cases}

    for c in sorted(st_hs.objects["companies"], key=int)[:2]:
        hs.modify("companies", c, healthbot_arr="123456.00")
    deals = st_hs.objects["deals"]
    deal = next(d for d in sorted(deals) if deals[d]["properties"]["dealstage"] == "contractsent")
    hs.modify("deals", deal, dealstage="closedwon", hs_is_closed_won="true")
    tix = st_hs.objects["tickets"]
    tickets = [t for t in sorted(tix) if tix[t]["properties"]["hs_pipeline_stage"] != "4"][:2]
    for t in tickets:
        hs.modify("tickets", t, hs_pipeline_stage="4", closed_date=iso(st_hs.now_ms))
    touched = {c for t in tickets for c in st_hs.associated("tickets", "companies", t)}
    others = {t for c in touched for t in st_hs.associated("companies", "tickets", c)} - set(
        tickets
    )
    sf_rows = Counter(Account=2, Contract=1, Case=2, Opportunity=1)
    sf_read = sf_rows + Counter({o: len(ids) for o, ids in saved.items()})  # + the saved second
    with_kids = saved["Account"] | set(accounts)  # Accounts read, with their Contract child rows
    kids = sum(1 for r in db["Contract"].values() if r["AccountId"] in with_kids)
    hs_rows = Counter(companies=2, deals=1, tickets=2) + hs_ties  # + a big saved-instant tie
    say(f"modified Salesforce {dict(sf_rows)}, HubSpot {dict(hs_rows)}")
    return {
        "salesforce": (
            sf_need(sf_read, children=kids, reread=len(reread), counted=len(case_accounts)),
            sf_read,
        ),
        "hubspot": (hs_need(hs, hs_rows, len(touched), len(others)), hs_rows),
        "stripe": modify_stripe(st),
    }


def fresh_database(url: str | None, *, drop: bool = False) -> str:
    if not url:
        return f"sqlite:///{tempfile.mkdtemp(prefix='healthbot-bench-sync-')}/bench.db"
    admin = make_url(url).set(drivername="postgresql")
    with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(DB)))
        if not drop:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DB)))
    return admin.set(database=DB).render_as_string(hide_password=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--accounts", type=int, default=10_000)
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--layout", choices=("split", "both"), default="split")
    ap.add_argument(
        "--overlap-every",
        type=int,
        default=10,
        help="split: account i in both CRMs when i %% K == 0 (0: none)",
    )
    ap.add_argument(
        "--duplicates",
        type=int,
        default=1,
        help="split: HubSpot companies duplicated with their domain",
    )
    ap.add_argument("--url", help="PostgreSQL server (admin) URL; default: SQLite in a temp dir")
    args = ap.parse_args()

    say(f"generating {args.accounts:,} accounts over {args.days} days ({args.layout})")
    p = replace(generate_portfolio(args.accounts, days=args.days), touches=[], contacts=[])
    ids = frozenset(a.external_id for a in p.accounts)
    layout = (
        crm_layout(p, overlap_every=args.overlap_every, duplicates=args.duplicates)
        if args.layout == "split"
        else CrmLayout(salesforce=ids, hubspot=ids)
    )
    overlap = {
        "both": len(layout.both),
        "cross_ref": len(layout.cross_ref),
        "domain": len(layout.by_domain),
        "duplicates": len(layout.duplicates),
    }
    say(f"in both CRMs: {overlap}")
    sf, hs = start_crm_sandboxes(p, layout, tickets=True)
    st = start_stripe_sandbox(p, crm_ids=stripe_crm_ids(p, layout))
    engine = make_engine(fresh_database(args.url))
    meter = LinkMeter(engine)
    try:
        upgrade(engine)
        meter.take()
        settings = sandbox_settings(sf, hs, stripe=st)
        servers = {
            "salesforce": (sf.server, sf_kinds),
            "hubspot": (hs.server, hs_kinds),
            "stripe": (st.server, stripe_kinds),
        }
        sf_rows = Counter({o: len(sf.db[o]) for o in SF_STREAMS})
        hs_rows = Counter({k: len(hs.store.objects[k]) for k in HS_KINDS})
        say(f"fakes hold Salesforce {dict(sf_rows)}, HubSpot {dict(hs_rows)}")
        needs = {
            "salesforce": (sf_need(sf_rows, children=sf_rows["Contract"], first=True), sf_rows),
            "hubspot": (hs_need(hs, hs_rows, 0, 0), hs_rows),
            "stripe": stripe_need_full(st),
        }
        full, seconds = run_sync(engine, settings, servers, needs, meter)
        incremental, inc_seconds = run_sync(engine, settings, servers, modify(sf, hs, st), meter)
        late = late_cross_refs(engine, settings, hs, layout, meter)
        counts = identity_counts(engine)
        say(f"end: {counts}")
    finally:
        engine.dispose()
        sf.stop()
        hs.stop()
        st.stop()
        if args.url:
            fresh_database(args.url, drop=True)
    result = {"accounts": args.accounts, "layout": args.layout, "days": args.days}
    result |= {"overlap": overlap, "seconds": seconds, "sources": full, "checks": CHECKS}
    result["incremental"] = {"seconds": inc_seconds, "sources": incremental}
    result["late_cross_refs"] = {k: v for k, v in late.items() if k != "db"}
    result |= {
        "crm_records": counts["crm_records"],
        "accounts_at_end": counts["accounts"],
        "linked": counts["linked"],
        "db_statements": {
            phase: {name: src["db"] for name, src in sources.items()}
            for phase, sources in (("full", full), ("incremental", incremental))
        }
        | {"late_cross_refs": late["db"]},
    }
    print(json.dumps(result | {"wall_seconds": round(time.perf_counter() - T0, 2)}))


if __name__ == "__main__":
    main()
