"""Demo step: start sandbox Salesforce, HubSpot and Zendesk APIs on loopback, seeded with the
sandbox portfolio, and sync through them with the real vendor clients.

Three accounts in four live in Salesforce, the fourth in HubSpot; support tickets live in
Zendesk; product usage arrives as a CSV export. Signals no vendor sandbox serves yet (NPS
surveys, billing, CSM sentiment) are loaded straight from the portfolio, by domain.
"""

from __future__ import annotations

import csv
import tempfile
from dataclasses import replace
from pathlib import Path

from cli.sync import explain_problems, report_table, run_source
from connectors.registry import enabled_sources
from connectors.sandbox.hubspot_api import TOKEN as HUBSPOT_TOKEN
from connectors.sandbox.hubspot_api import start_hubspot_sandbox
from connectors.sandbox.portfolio import Portfolio
from connectors.sandbox.salesforce_api import TOKEN as SALESFORCE_TOKEN
from connectors.sandbox.salesforce_api import start_salesforce_sandbox
from connectors.sandbox.source import PortfolioSource
from connectors.sandbox.zendesk_api import start_zendesk_sandbox
from health.settings import Settings

DIRECT_SIGNALS = frozenset({"nps", "csm_sentiment", "payment_days_late", "payment_failed"})


def subset(p: Portfolio, ids: set[str], *, tickets: bool) -> Portfolio:
    keep = lambda rows: [r for r in rows if r.account_id in ids]  # noqa: E731
    return replace(
        p,
        accounts=[a for a in p.accounts if a.external_id in ids],
        usage=keep(p.usage),
        tickets=keep(p.tickets) if tickets else [],
        contacts=keep(p.contacts),
        touches=keep(p.touches),
        nps=keep(p.nps),
        invoices=keep(p.invoices),
        renewals=keep(p.renewals),
    )


def write_usage_csv(p: Portfolio, path: Path) -> None:
    domains = {a.external_id: a.domain for a in p.accounts}
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["domain", "day", "active_users", "seats", "core_features_used", "key_events"])
        for u in p.usage:
            w.writerow(
                [
                    domains[u.account_id],
                    u.day.isoformat(),
                    u.active_users,
                    u.seats,
                    u.core_features_used,
                    u.key_events,
                ]
            )


def sandbox_settings(sf, hs, zd=None, **more) -> Settings:
    """Settings that point the real clients at running vendor sandboxes (Zendesk optional)."""
    vendors = dict(
        salesforce_instance_url=sf.url,
        salesforce_access_token=SALESFORCE_TOKEN,
        requests_ca_bundle=sf.ca_path,
        hubspot_base_url=hs.url,
        hubspot_access_token=HUBSPOT_TOKEN,
    )
    if zd is not None:
        vendors.update(zendesk_base_url=zd.url, zendesk_email=zd.email, zendesk_api_token=zd.token)
    return Settings(**vendors, **more)


def sync_sandbox_apis(ctx) -> None:
    p: Portfolio = ctx.portfolio
    hubspot_ids = {a.external_id for i, a in enumerate(p.accounts) if i % 4 == 3}
    salesforce_ids = {a.external_id for a in p.accounts} - hubspot_ids
    workdir = Path(tempfile.mkdtemp(prefix="healthbot-demo-"))
    usage_csv = workdir / "usage.csv"
    write_usage_csv(p, usage_csv)
    sf = start_salesforce_sandbox(subset(p, salesforce_ids, tickets=False))
    hs = start_hubspot_sandbox(subset(p, hubspot_ids, tickets=False))
    zd = start_zendesk_sandbox(p)
    try:
        ctx.console.print(f"  Salesforce {sf.url} · HubSpot {hs.url} · Zendesk {zd.url}")
        settings = sandbox_settings(sf, hs, zd, usage_csv=usage_csv)
        reports = [run_source(ctx.engine, s, ctx.console) for s in enabled_sources(settings)]
        reports.append(
            run_source(ctx.engine, PortfolioSource(p, only_signals=DIRECT_SIGNALS), ctx.console)
        )
        ctx.console.print(report_table(reports))
        explain_problems(reports, ctx.console)
    finally:
        for server in (sf, hs, zd):
            server.stop()
