"""One customer, one account, end to end: sandbox Salesforce and HubSpot sharing customers
(linked by the Salesforce Account Id HubSpot's Salesforce integration keeps on the company, or
by domain), Zendesk tickets and a usage CSV matched to them, one `run_once` pass on
PostgreSQL: one account and one score per customer, written onto every CRM record it has."""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from cli.demo_sync import (
    CrmLayout,
    crm_layout,
    sandbox_settings,
    start_crm_sandboxes,
    write_usage_csv,
)
from connectors.hubspot.mapping import SALESFORCE_ACCOUNT_ID
from connectors.hubspot.sink import build_sink
from connectors.hubspot.source import build_source
from connectors.sandbox.portfolio import generate_portfolio
from connectors.sandbox.zendesk_api import start_zendesk_sandbox
from health.identity import to_review
from health.models import Account, CrmRecord, Observation, Outcome, Score
from health.scoring.model import load_model
from health.settings import DEFAULT_MODEL_PATH
from tests.contract.helpers import written_ids

USAGE = ("active_users", "seats", "core_features_used", "key_events")


@pytest.fixture(scope="module")
def portfolio():
    return generate_portfolio(accounts=40, days=120, seed=11)


@pytest.fixture(scope="module")
def layout(portfolio) -> CrmLayout:
    return crm_layout(portfolio, overlap_every=10, duplicates=1)


@pytest.fixture(scope="module")
def model():
    return load_model(DEFAULT_MODEL_PATH)


@pytest.fixture
def sandboxes(portfolio, layout, tmp_path):
    usage_csv = tmp_path / "usage.csv"
    write_usage_csv(portfolio, usage_csv)
    sf, hs = start_crm_sandboxes(portfolio, layout)
    try:
        with start_zendesk_sandbox(portfolio) as zd:
            settings = sandbox_settings(sf, hs, zd, usage_csv=usage_csv)
            build_sink(settings).ensure_properties()  # HubSpot's score properties
            yield sf, hs, zd, settings
    finally:
        sf.stop()
        hs.stop()


def test_the_layout_overlaps_both_ways_and_has_one_duplicate(portfolio, layout, sandboxes):
    _, hs, _, _ = sandboxes
    assert len(layout.both) == 4 and len(layout.cross_ref) == 2 and len(layout.by_domain) == 2
    assert not (set(layout.duplicates) & layout.salesforce)
    companies = hs.store.objects["companies"]
    for ext in layout.both:
        props = companies[hs.company_ids[ext]]["properties"]
        assert props.get(SALESFORCE_ACCOUNT_ID) == layout.cross_ref.get(ext)
    (twin, original), *more = hs.store.duplicates.items()
    assert not more
    assert companies[twin]["properties"]["domain"] == companies[original]["properties"]["domain"]
    assert SALESFORCE_ACCOUNT_ID in hs.store.properties["companies"]


def test_one_account_per_customer_one_score_on_every_record(
    pg_engine, portfolio, layout, sandboxes, model
):
    from workers.pipeline import run_once

    sf, hs, _, settings = sandboxes
    run = run_once(pg_engine, settings, model)
    assert not run.failed, run.failed
    assert {r.source for r in run.syncs} == {"salesforce", "hubspot", "zendesk", "usage"}

    by_domain = {a.external_id: a.domain for a in portfolio.accounts}
    with Session(pg_engine) as s:
        records = {(r.source, r.external_id): r for r in s.exec(select(CrmRecord)).scalars()}
        live = s.exec(select(Account).where(Account.merged_into.is_(None))).scalars().all()
        scores = Counter(s.exec(select(Score.account_id)).scalars())
        score_of = {sc.account_id: sc for sc in s.exec(select(Score)).scalars()}
        review = to_review(session=s)

        # every CRM record is on an account; accounts = records - the overlapped customers
        n_hubspot = len(layout.hubspot) + len(layout.duplicates)
        assert len(records) == len(layout.salesforce) + n_hubspot
        assert len(live) == len(records) - len(layout.both)
        gone = {a.domain for a in portfolio.accounts if a.churned_on}  # former customers
        customers = {a.id for a in live if a.domain not in gone}
        assert gone and scores == Counter(dict.fromkeys(customers, 1))  # one per customer

        for ext in sorted(layout.both):
            sf_rec = records[("salesforce", ext)]
            hs_rec = records[("hubspot", hs.company_ids[ext])]
            how = "cross_ref" if ext in layout.cross_ref else "domain"
            assert sf_rec.account_id == hs_rec.account_id, ext
            assert hs_rec.linked_by == how and hs_rec.review is None
            account = s.get(Account, sf_rec.account_id)
            assert (account.source, account.external_id) == ("salesforce", ext)  # primary leads
            assert hs_rec.cross_ref == layout.cross_ref.get(ext)

            # the same score on both CRM records
            total = round(score_of[account.id].total)
            assert float(sf.record("Account", ext)["Health_Score__c"]) == total
            shown = hs.store.objects["companies"][hs_rec.external_id]["properties"]
            assert float(shown["health_score"]) == total

            # Zendesk tickets and product usage of the customer are on that one account
            obs = defaultdict(set)
            q = select(Observation.source, Observation.account_id).where(
                Observation.record_id.in_([sf_rec.id, hs_rec.id])
            )
            for source, acc in s.execute(q):
                obs[source].add(acc)
            assert obs["zendesk"] == {account.id}, ext
            assert obs["usage"] == {account.id}, ext
            assert obs["hubspot"] <= {account.id} and obs["salesforce"] <= {account.id}
            n_usage = s.scalar(
                select(func.count()).where(
                    Observation.account_id == account.id, Observation.signal.in_(USAGE)
                )
            )
            days = sum(1 for u in portfolio.usage if u.account_id == ext)
            assert n_usage == days * len(USAGE)
            # renewals come in from both CRMs, each keyed by its own record
            renewals = s.execute(
                select(Outcome.record_id).where(Outcome.account_id == account.id)
            ).scalars()
            closed = sum(
                1 for r in portfolio.renewals if r.account_id == ext and r.outcome != "open"
            )
            assert Counter(renewals) == (
                Counter({sf_rec.id: closed, hs_rec.id: closed}) if closed else Counter()
            )

        # the duplicate HubSpot companies: each on an account of its own, both for review
        (twin, original), *_ = hs.store.duplicates.items()
        pair = [records[("hubspot", twin)], records[("hubspot", original)]]
        assert len({r.account_id for r in pair}) == 2
        assert {r.external_id for r in review} == {twin, original}
        dup_domain = by_domain[layout.duplicates[0]]
        assert all(r.review and dup_domain in r.review for r in review)
        assert all(scores[r.account_id] == 1 for r in pair)

    sent = written_ids(sf, hs)
    assert all(n == 1 for n in sent.values())  # every record written once
    assert len(sent) == sum(r.account_id in customers for r in records.values())

    # a second pass changes nothing and writes nothing
    again = run_once(pg_engine, settings, model)
    assert not again.failed, again.failed
    assert sum(f.sent for f in again.flushes) == 0
    assert written_ids(sf, hs) == sent
    with Session(pg_engine) as s:
        assert s.scalar(select(func.count()).select_from(Score)) == sum(scores.values())
        assert s.scalar(select(func.count()).select_from(CrmRecord)) == len(records)


def test_a_portal_without_the_salesforce_integration_still_syncs(portfolio, layout):
    """No `salesforceaccountid` property (the portal never had HubSpot's Salesforce
    integration): the connector still asks for it, HubSpot leaves it out, nothing breaks."""
    plain = crm_layout(portfolio, overlap_every=0, duplicates=0)
    sf, hs = start_crm_sandboxes(portfolio, plain)
    try:
        assert SALESFORCE_ACCOUNT_ID not in hs.store.properties["companies"]
        assert not plain.both
        source = build_source(sandbox_settings(sf, hs))
        accounts = [a for b in source.pull(None) for a in b.accounts]
        assert {a.external_id for a in accounts} == set(hs.company_ids.values())
        assert all(a.cross_ref is None for a in accounts)
        searches = [r.json() for r in hs.server.requests if r.path.endswith("companies/search")]
        assert searches and all(SALESFORCE_ACCOUNT_ID in b["properties"] for b in searches)
    finally:
        sf.stop()
        hs.stop()


def test_a_person_links_the_duplicates_and_a_full_resync_keeps_it(
    pg_engine, sandboxes, model, layout
):
    from health.db import session_scope
    from health.models import SyncState
    from workers.pipeline import link_accounts, run_once, unlink_record

    sf, hs, zd, settings = sandboxes
    run_once(pg_engine, settings, model)
    with session_scope(pg_engine) as s:
        first, second = sorted(r.external_id for r in to_review(session=s))
    keep, _, scored = link_accounts(pg_engine, settings, model, first, second)
    assert scored.scored == 1
    with session_scope(pg_engine) as s:  # a full re-sync: every watermark forgotten
        s.execute(SyncState.__table__.delete())
    again = run_once(pg_engine, settings, model)
    assert not again.failed
    with Session(pg_engine) as s:
        owners = set(
            s.execute(
                select(CrmRecord.account_id).where(CrmRecord.external_id.in_([first, second]))
            ).scalars()
        )
        assert owners == {keep.id} and to_review(session=s) == []
    home, _ = unlink_record(pg_engine, settings, model, f"hubspot:{second}")
    run_once(pg_engine, settings, model)
    with Session(pg_engine) as s:
        owner = s.execute(
            select(CrmRecord.account_id).where(CrmRecord.external_id == second)
        ).scalar_one()
    assert owner == home.id != keep.id  # and so does the unlink
