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
from datetime import UTC, datetime
from pathlib import Path

from rich import box
from rich.table import Table

from cli.render import spinners
from cli.sync import SourceBars, show_syncs
from cli.writeback import FlushBars, show_flushes
from connectors.registry import build_sink
from connectors.sandbox.hubspot_api import TOKEN as HUBSPOT_TOKEN
from connectors.sandbox.hubspot_api import start_hubspot_sandbox
from connectors.sandbox.portfolio import Portfolio
from connectors.sandbox.salesforce_api import TOKEN as SALESFORCE_TOKEN
from connectors.sandbox.salesforce_api import start_salesforce_sandbox
from connectors.sandbox.source import PortfolioSource
from connectors.sandbox.zendesk_api import start_zendesk_sandbox
from health.settings import Settings
from workers.pipeline import run_once, sync_all, sync_source

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


def start_sandboxes(ctx) -> None:
    """Sandbox Salesforce, HubSpot and Zendesk on loopback, up until the demo ends; the CRMs
    start without the health-score fields, and `healthbot crm setup` creates them."""
    from workers.crm_setup import setup_crm

    p: Portfolio = ctx.portfolio
    hubspot_ids = {a.external_id for i, a in enumerate(p.accounts) if i % 4 == 3}
    salesforce_ids = {a.external_id for a in p.accounts} - hubspot_ids
    workdir = Path(tempfile.mkdtemp(prefix="healthbot-demo-"))
    usage_csv = workdir / "usage.csv"
    write_usage_csv(p, usage_csv)
    ctx.servers.append(
        start_salesforce_sandbox(subset(p, salesforce_ids, tickets=False), score_fields=False)
    )
    ctx.servers.append(start_hubspot_sandbox(subset(p, hubspot_ids, tickets=False)))
    ctx.servers.append(start_zendesk_sandbox(p))
    sf, hs, zd = ctx.servers
    ctx.console.print(f"  Salesforce {sf.url} · HubSpot {hs.url} · Zendesk {zd.url}")
    ctx.settings = sandbox_settings(sf, hs, zd, usage_csv=usage_csv)
    for crm in setup_crm(ctx.settings):
        done = ", ".join(crm.created) or "none needed"
        ctx.console.print(f"  {crm.crm.title()} score fields created: {done}")
        if crm.error or crm.by_hand:
            ctx.console.print(f"  [red]{crm.crm}: {crm.error or crm.reason}[/red]")


def sync_sandbox_apis(ctx) -> None:
    """Every configured source through the real clients, as `healthbot sync` pulls them; the
    signals no vendor sandbox serves yet come straight from the portfolio."""
    with spinners(ctx.console) as bar:
        bars = SourceBars(bar)
        run = sync_all(ctx.engine, ctx.settings, on_batch=bars)
        direct = PortfolioSource(ctx.portfolio, only_signals=DIRECT_SIGNALS)
        run.syncs.append(sync_source(ctx.engine, direct, on_batch=bars))
    show_syncs(run, ctx.console)


def write_to_crms(ctx) -> None:
    """One pass of `healthbot run`: nothing changed in the sources since the sync, so it goes
    straight to writing each account's newest score to its CRM."""
    with spinners(ctx.console) as bar:
        run = run_once(
            ctx.engine, ctx.settings, ctx.model, on_batch=SourceBars(bar), on_chunk=FlushBars(bar)
        )
    show_flushes(run.flushes, ctx.console)
    for name, why in run.failed.items():
        ctx.console.print(f"  [red]{name} failed:[/red] {why}")


def show_crm_fields(ctx, account) -> None:
    """What the account's CRM record shows, read back through the vendor's API."""
    sink = build_sink(ctx.settings, account.source)
    shown = sink.read_fields([account.external_id]).get(account.external_id, {})
    names = getattr(sink, "fields", None) or getattr(sink, "names", {})
    crm = {"salesforce": "Salesforce", "hubspot": "HubSpot"}.get(account.source, account.source)
    table = Table(
        title=f"{account.name} in {crm} ({account.external_id})",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    table.add_column("Field")
    table.add_column("Value", overflow="fold")
    for key, value in shown.items():
        if key == "updated_at" and str(value).isdigit():  # HubSpot: epoch milliseconds
            value = datetime.fromtimestamp(int(value) / 1000, UTC).isoformat()
        table.add_row(names.get(key, key), "" if value is None else str(value))
    ctx.console.print(table)


def stop_sandboxes(ctx) -> None:
    for server in ctx.servers:
        server.stop()
    ctx.servers.clear()
