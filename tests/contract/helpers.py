"""Pieces the contract tests share: a CRM stand-in and a sync killed part-way."""

from __future__ import annotations

from collections import Counter
from contextlib import contextmanager

from connectors.sandbox.portfolio import Portfolio, account_records
from health.records import Batch


class Accounts:
    """The CRM side: the portfolio's accounts only, for a source whose records are matched to
    them (help desk, product usage)."""

    name = "sandbox"

    def __init__(self, portfolio: Portfolio):
        self.portfolio = portfolio

    def pull(self, since):
        yield Batch(accounts=account_records(self.portfolio), watermark="seeded")


class Killed(Exception):
    """Stands for the process dying between two batches."""


def kill_after(n: int):
    """An `on_batch` hook that kills the sync once `n` batches are stored."""

    def on_batch(report, batch):
        on_batch.n += 1
        if on_batch.n == n:
            raise Killed

    on_batch.n = 0
    return on_batch


@contextmanager
def crm_sandboxes(portfolio: Portfolio, *, sf_rate_limit_status: int = 403, **settings):
    """Sandbox Salesforce (three accounts in four) and HubSpot (the fourth, with the score
    properties created as `healthbot crm setup` would), and Settings pointing at both."""
    from cli.demo_sync import sandbox_settings, subset
    from connectors.hubspot.sink import build_sink
    from connectors.sandbox.hubspot_api import start_hubspot_sandbox
    from connectors.sandbox.salesforce_api import start_salesforce_sandbox

    hs_ids = {a.external_id for i, a in enumerate(portfolio.accounts) if i % 4 == 3}
    sf_ids = {a.external_id for a in portfolio.accounts} - hs_ids
    with (
        start_salesforce_sandbox(
            subset(portfolio, sf_ids, tickets=False), rate_limit_status=sf_rate_limit_status
        ) as sf,
        start_hubspot_sandbox(subset(portfolio, hs_ids, tickets=False)) as hs,
    ):
        config = sandbox_settings(sf, hs, **settings)
        build_sink(config).ensure_properties()
        sf.server.reset_counts()
        hs.server.reset_counts()
        yield sf, hs, config


def written_ids(sf, hs) -> Counter:
    """How often each CRM record was sent a score: ids in every Salesforce collection update
    and every HubSpot batch update the fakes received."""
    sent: Counter = Counter()
    for r in sf.server.requests:
        if r.method == "PATCH" and r.path.endswith("/composite/sobjects"):
            sent.update(rec["id"] for rec in r.json()["records"])
    for r in hs.server.requests:
        if r.method == "POST" and r.path.endswith("/batch/update"):
            sent.update(str(i["id"]) for i in r.json()["inputs"])
    return sent
