"""Demo step: start sandbox Salesforce, HubSpot and Zendesk APIs on loopback, seeded with the
sandbox portfolio, and sync through them with the real vendor clients.

Three accounts in four live in Salesforce, the fourth in HubSpot, and one in ten is in both
(`crm_layout`): half of those carry their Salesforce Account Id on the HubSpot company
(`salesforceaccountid`, as HubSpot's Salesforce integration keeps it), half only share the
domain; one HubSpot company has a duplicate with its domain, which is left for a person to
review. Support tickets live in Zendesk; billing in Stripe (customers carry their Salesforce
Account Id in metadata, two in three of them; the rest, and HubSpot's, match by email domain;
one customer is of a company no CRM knows); product usage arrives as a CSV export. Signals no
vendor sandbox serves yet (NPS surveys, CSM sentiment) are loaded straight from the portfolio,
by domain.
"""

from __future__ import annotations

import csv
import tempfile
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from rich import box
from rich.table import Table
from sqlalchemy import func, select

from cli.render import spinners
from cli.sync import SourceBars, show_syncs
from cli.writeback import FlushBars, show_flushes
from connectors.registry import build_sink, configured_sinks
from connectors.sandbox.hubspot_api import TOKEN as HUBSPOT_TOKEN
from connectors.sandbox.hubspot_api import HubSpotSandbox, start_hubspot_sandbox
from connectors.sandbox.portfolio import Portfolio
from connectors.sandbox.salesforce_api import TOKEN as SALESFORCE_TOKEN
from connectors.sandbox.salesforce_api import SalesforceSandbox, start_salesforce_sandbox
from connectors.sandbox.source import PortfolioSource
from connectors.sandbox.stripe_api import start_stripe_sandbox
from connectors.sandbox.zendesk_api import start_zendesk_sandbox
from health.db import session_scope
from health.identity import records_of, to_review
from health.models import Account, CrmRecord
from health.settings import Settings
from workers.pipeline import run_once, sync_all, sync_source

DIRECT_SIGNALS = frozenset({"nps", "csm_sentiment"})


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


@dataclass(frozen=True)
class CrmLayout:
    """Which sandbox CRM holds which portfolio account (the Salesforce fake keeps the
    portfolio id as the Account Id)."""

    salesforce: frozenset[str]
    hubspot: frozenset[str]
    cross_ref: dict[str, str] = field(default_factory=dict)  # id -> salesforceaccountid
    duplicates: tuple[str, ...] = ()  # HubSpot companies given a twin with the same domain

    @property
    def both(self) -> frozenset[str]:
        return self.salesforce & self.hubspot

    @property
    def by_domain(self) -> frozenset[str]:
        """In both CRMs with nothing but the domain in common."""
        return self.both - set(self.cross_ref)


def crm_layout(p: Portfolio, *, overlap_every: int = 10, duplicates: int = 1) -> CrmLayout:
    """Account i in HubSpot when i % 4 == 3, else in Salesforce; account i is in both when
    i % overlap_every == 0 (a Salesforce account: 10 -> one account in ten), alternately with
    its Salesforce Account Id on the HubSpot company and with only the domain in common; the
    first `duplicates` HubSpot-only companies get a twin with their domain.
    `overlap_every=0, duplicates=0` is the split without overlap."""
    ids = [a.external_id for a in p.accounts]
    hubspot_only = [x for i, x in enumerate(ids) if i % 4 == 3]
    salesforce = [x for i, x in enumerate(ids) if i % 4 != 3]
    both = [x for i, x in enumerate(ids) if overlap_every and i % overlap_every == 0 and i % 4 != 3]
    return CrmLayout(
        salesforce=frozenset(salesforce),
        hubspot=frozenset(hubspot_only + both),
        cross_ref={x: x for x in both[::2]},
        duplicates=tuple(hubspot_only[:duplicates]),
    )


def start_crm_sandboxes(
    p: Portfolio, layout: CrmLayout, *, tickets: bool = False, salesforce=None, hubspot=None
) -> tuple[SalesforceSandbox, HubSpotSandbox]:
    """Sandbox Salesforce and HubSpot holding the accounts `layout` gives each; `salesforce`
    and `hubspot` are options for start_salesforce_sandbox / start_hubspot_sandbox. A
    customer in both brings its renewals, touches and contacts (and tickets) to both."""
    sf = start_salesforce_sandbox(
        subset(p, set(layout.salesforce), tickets=tickets), **(salesforce or {})
    )
    try:
        hs = start_hubspot_sandbox(**(hubspot or {}))
        try:
            hs.company_ids.update(
                hs.store.seed(
                    subset(p, set(layout.hubspot), tickets=tickets),
                    salesforce_ids=dict(layout.cross_ref) if layout.both else None,
                    duplicates=layout.duplicates,
                )
            )
        except BaseException:
            hs.stop()
            raise
    except BaseException:
        sf.stop()
        raise
    return sf, hs


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


def stripe_crm_ids(p: Portfolio, layout: CrmLayout) -> dict[str, str | None]:
    """The CRM id each Stripe customer's metadata holds: a Salesforce account's Id on two in
    three of them; none (email domain only) for the rest and for HubSpot's companies."""
    return {
        a.external_id: a.external_id if a.external_id in layout.salesforce and i % 3 != 2 else None
        for i, a in enumerate(p.accounts)
    }


def sandbox_settings(sf, hs, zd=None, stripe=None, **more) -> Settings:
    """Settings that point the real clients at running vendor sandboxes (Zendesk and Stripe
    optional)."""
    vendors = dict(
        salesforce_instance_url=sf.url,
        salesforce_access_token=SALESFORCE_TOKEN,
        requests_ca_bundle=sf.ca_path,
        hubspot_base_url=hs.url,
        hubspot_access_token=HUBSPOT_TOKEN,
    )
    if zd is not None:
        vendors.update(zendesk_base_url=zd.url, zendesk_email=zd.email, zendesk_api_token=zd.token)
    if stripe is not None:
        vendors.update(stripe_api_key=stripe.api_key, stripe_base_url=stripe.url)
    return Settings(**vendors, **more)


def start_sandboxes(ctx) -> None:
    """Sandbox Salesforce, HubSpot, Zendesk and Stripe on loopback, up until the demo ends; the
    CRMs start without the health-score fields, and `healthbot crm setup` creates them."""
    from workers.crm_setup import setup_crm

    p: Portfolio = ctx.portfolio
    layout = crm_layout(p)
    workdir = Path(tempfile.mkdtemp(prefix="healthbot-demo-"))
    usage_csv = workdir / "usage.csv"
    write_usage_csv(p, usage_csv)
    ctx.servers.extend(start_crm_sandboxes(p, layout, salesforce={"score_fields": False}))
    ctx.servers.append(start_zendesk_sandbox(p))
    ctx.servers.append(start_stripe_sandbox(p, crm_ids=stripe_crm_ids(p, layout)))
    sf, hs, zd, st = ctx.servers
    ctx.console.print(
        f"  Salesforce {sf.url} · HubSpot {hs.url} · Zendesk {zd.url} · Stripe {st.url}"
    )
    ctx.console.print(
        f"  {len(layout.salesforce)} Salesforce accounts, {len(hs.store.objects['companies'])} "
        f"HubSpot companies: {len(layout.both)} customers in both ({len(layout.cross_ref)} "
        f"carry their Salesforce id, {len(layout.by_domain)} share only the domain), "
        f"{len(layout.duplicates)} HubSpot company duplicated with its domain"
    )
    ctx.settings = sandbox_settings(sf, hs, zd, st, usage_csv=usage_csv)
    for crm in setup_crm(ctx.settings):
        done = ", ".join(crm.created) or "none needed"
        ctx.console.print(f"  {crm.crm.title()} score fields created: {done}")
        if crm.error or crm.by_hand or crm.values_by_hand:
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
    show_links(ctx)


def show_links(ctx) -> None:
    """How the CRM records became accounts: linked by cross-reference, by domain, or left on
    their own for a person to review."""
    with session_scope(ctx.engine) as session:
        counts = session.execute(
            select(CrmRecord.source, CrmRecord.linked_by, func.count()).group_by(
                CrmRecord.source, CrmRecord.linked_by
            )
        ).all()
        accounts = session.scalar(
            select(func.count()).select_from(Account).where(Account.merged_into.is_(None))
        )
        review = to_review(session=session)
        reasons = sorted({r.review for r in review})
    by: dict[str, int] = {}
    billing: dict[str, int] = {}
    for source, linked_by, n in counts:
        into = billing if source == "stripe" else by
        into[linked_by] = into.get(linked_by, 0) + n
    ctx.console.print(
        f"  {sum(by.values()):,} CRM records → {accounts:,} accounts: "
        f"{by.get('cross_ref', 0)} linked by Salesforce id, {by.get('domain', 0)} by domain, "
        f"{len(review)} left for review"
    )
    if billing:
        ctx.console.print(
            f"  {sum(billing.values()):,} Stripe customers attached to their accounts: "
            f"{billing.get('cross_ref', 0)} by the CRM id in their metadata, "
            f"{billing.get('domain', 0)} by email domain"
        )
    for why in reasons:
        ctx.console.print(f"  [yellow]review:[/yellow] {why}")


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
    """What each of the account's CRM records shows, read back through the vendor's API."""
    with session_scope(ctx.engine) as session:
        records = [
            (r.source, r.external_id)
            for r in records_of(session=session, account_ids=[account.id]).get(account.id, [])
            if r.deleted_at is None and r.source in configured_sinks(ctx.settings)
        ]
    for source, external_id in records or [(account.source, account.external_id)]:
        sink = build_sink(ctx.settings, source)
        shown = sink.read_fields([external_id]).get(external_id, {})
        names = getattr(sink, "fields", None) or getattr(sink, "names", {})
        crm = {"salesforce": "Salesforce", "hubspot": "HubSpot"}.get(source, source)
        table = Table(
            title=f"{account.name} in {crm} ({external_id})",
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
