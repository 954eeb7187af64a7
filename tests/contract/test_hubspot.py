"""HubSpot connector: the real hubspot-api-client over real HTTP against the local fake."""

from __future__ import annotations

import json
import math
from collections import Counter
from datetime import UTC, datetime

import pytest
from sqlalchemy import select, text
from sqlmodel import Session

from connectors.base import AuthConnectorError, TransientConnectorError
from connectors.hubspot.client import HubSpotClient
from connectors.hubspot.sink import HubSpotScoreSink
from connectors.hubspot.source import HubSpotSource, build_source, is_configured
from connectors.sandbox.hubspot_api import start_hubspot_sandbox
from connectors.sandbox.hubspot_store import ms
from connectors.sandbox.portfolio import generate_portfolio
from connectors.sandbox.server import Fault
from health.ingest import ingest
from health.models import Account, Observation, Outcome, SyncError
from health.records import ScoreWrite
from health.settings import Settings
from tests.conftest import _empty
from tests.contract.helpers import Killed, kill_after

SEARCH = "/search"


@pytest.fixture(scope="module")
def portfolio():
    return generate_portfolio(accounts=40, days=120)


@pytest.fixture
def sandbox(portfolio):
    with start_hubspot_sandbox(portfolio) as sb:
        yield sb


def make_source(sb, **opts) -> HubSpotSource:
    client_opts = {
        "sleep": lambda s: None,
        "jitter": lambda: 0.0,
        "timeout": 5.0,
        **opts.pop("client", {}),
    }
    client = HubSpotClient(access_token=sb.token, base_url=sb.url, **client_opts)
    return HubSpotSource(client, **opts)


def snapshot(engine) -> dict:
    """Table contents without surrogate ids or bookkeeping timestamps."""
    with Session(engine) as s:
        ext = dict(s.execute(select(Account.id, Account.external_id)).all())
        return {
            "accounts": sorted(
                (
                    a.source,
                    a.external_id,
                    a.name,
                    a.domain,
                    a.owner,
                    a.segment,
                    a.arr,
                    a.customer_since,
                    a.renewal_date,
                    a.deleted_at is not None,
                )
                for a in s.exec(select(Account)).scalars()
            ),
            "observations": sorted(
                (ext[o.account_id], o.signal, o.observed_at, o.value, o.source)
                for o in s.exec(select(Observation)).scalars()
            ),
            "outcomes": sorted(
                (ext[o.account_id], o.kind, o.occurred_on, o.arr_change, o.external_id)
                for o in s.exec(select(Outcome)).scalars()
            ),
            "errors": sorted(
                Counter(
                    (e.record_key, e.reason) for e in s.exec(select(SyncError)).scalars()
                ).items()
            ),
            "watermark": s.execute(text("SELECT watermark FROM syncstate")).scalars().all(),
        }


def test_full_sync_lands_portfolio(engine, sandbox, portfolio):
    src = make_source(sandbox)
    report = ingest(engine, src)
    snap = snapshot(engine)
    ids = sandbox.company_ids
    assert len(snap["accounts"]) == len(portfolio.accounts)
    by_id = {a[1]: a for a in snap["accounts"]}
    for acc in portfolio.accounts:
        row = by_id[ids[acc.external_id]]  # external_id is the HubSpot company id
        assert row[0] == "hubspot" and row[2:7] == (
            acc.name,
            acc.domain,
            acc.owner,
            acc.segment,
            acc.arr,
        )
        assert row[7:9] == (acc.customer_since, acc.renewal_date)
    expected = sorted(
        (ids[r.account_id], r.outcome, r.close_date, r.amount - r.prior_amount, r.external_id)
        for r in portfolio.renewals
        if r.outcome != "open"
    )
    got = sorted((o[0], o[1], o[2], o[3], None) for o in snap["outcomes"])
    assert got == [(*e[:4], None) for e in expected]
    obs = Counter(o[1] for o in snap["observations"])
    sev1 = {
        (ids[t.account_id], t.created_at)
        for t in portfolio.tickets
        if t.priority == "urgent"  # the default sev-1 set is URGENT only
    }
    assert obs["sev1_ticket"] == len(sev1)
    open_now = Counter(
        ids[t.account_id] for t in portfolio.tickets if t.status not in ("solved", "closed")
    )
    snaps = {o[0]: o[3] for o in snap["observations"] if o[1] == "open_tickets"}
    assert snaps == {c: float(open_now.get(c, 0)) for c in snaps}
    assert set(snaps) == {ids[t.account_id] for t in portfolio.tickets}
    assert obs["csm_touch"] == len({t.account_id for t in portfolio.touches})
    left = {
        (ids[c.account_id], c.left_on) for c in portfolio.contacts if c.is_champion and c.left_on
    }
    got_left = {(o[0], o[2].date()) for o in snap["observations"] if o[1] == "champion_left"}
    assert left and got_left == left
    # minimum calls: one search page per 200 records, batched associations, no per-record reads
    n_tickets = len(portfolio.tickets)
    server = sandbox.server
    assert server.count("POST", "/companies/search") == 1
    assert server.count("POST", "/deals/search") == math.ceil(len(portfolio.renewals) / 200)
    assert server.count("POST", "/tickets/search") == math.ceil(n_tickets / 200)
    assert server.count("GET", "/owners") == 1
    n_deals = len(portfolio.renewals)
    assert server.count("POST", "/associations/deals/") == math.ceil(n_deals / 1000)
    assert server.count("POST", "/associations/tickets/") == math.ceil(n_tickets / 1000)
    # a first run tallies open tickets from the ticket pages: nothing re-read per company
    assert server.count("POST", "/associations/companies/") == 0
    assert server.count("POST", "/objects/tickets/batch/read") == 0
    n_champions = sum(c.is_champion for c in portfolio.contacts)
    assert server.count("POST", "/contacts/search") == math.ceil(n_champions / 200)
    assert server.count("POST", "/objects/contacts/batch/read") == math.ceil(n_champions / 50)
    assert server.count("POST", "/associations/contacts/") == 1  # only the flagged-left ones
    assert server.count("GET", "/crm/v3/objects/") == 3  # archived companies, tickets, contacts
    assert report.api_calls == len(server.requests)
    assert not snap["errors"] and report.stored.unmatched == {}


def test_incremental_fetches_only_changes(engine, sandbox):
    src = make_source(sandbox)
    ingest(engine, src)
    sandbox.server.reset_counts()
    report = ingest(engine, src)
    assert report.fetched == 0 and report.stored.upserted == 0
    # 4 searches (companies, deals, tickets, champion contacts) + 3 archived lists
    assert sandbox.server.count("POST", SEARCH) == 4 and len(sandbox.server.requests) == 7
    company = sorted(sandbox.store.objects["companies"])[3]
    ticket = next(
        t for t, cs in sandbox.store.assoc[("tickets", "companies")].items() if company in cs
    )
    sandbox.modify("companies", company, name="Renamed Inc")
    sandbox.modify("tickets", ticket, hs_pipeline_stage="3", closed_date=None)
    sandbox.server.reset_counts()
    report = ingest(engine, src)
    assert report.fetched == 2
    assert sandbox.server.count("POST", SEARCH) == 4
    with Session(engine) as s:
        acc = s.exec(select(Account).where(Account.external_id == company)).scalar_one()
        assert acc.name == "Renamed Inc"
        latest = (
            s.exec(
                select(Observation)
                .where(Observation.account_id == acc.id, Observation.signal == "open_tickets")
                .order_by(Observation.observed_at.desc())
            )
            .scalars()
            .first()
        )
    stamp = sandbox.store.objects["tickets"][ticket]["properties"]["hs_lastmodifieddate"]
    assert latest.observed_at.timestamp() * 1000 == ms(stamp)


def test_deleted_company_is_marked_deleted(engine, sandbox):
    src = make_source(sandbox)
    ingest(engine, src)
    gone = sorted(sandbox.store.objects["companies"])[0]
    sandbox.delete("companies", gone)
    report = ingest(engine, src)
    assert report.fetched == 1
    with Session(engine) as s:
        acc = s.exec(select(Account).where(Account.external_id == gone)).scalar_one()
        assert acc.deleted_at is not None
    assert ingest(engine, src).fetched == 0  # the deletion is not re-read


def test_pagination_and_shared_timestamps_across_pages():
    with start_hubspot_sandbox() as sb:
        ids = sb.add_companies(95, start_ms=ms("2026-01-01T00:00:00Z"))
        sb.set_modified("companies", ids[30:75], "2026-02-01T00:00:00Z")  # 45 share one instant
        src = make_source(sb, page_size=10)
        seen = Counter(a.external_id for b in src.pull(None) for a in b.accounts)
        assert seen == Counter(ids)  # every company exactly once
        assert sb.server.count("POST", "/companies/search") == 10


def test_tie_at_watermark_resumes_without_gaps_or_repeats():
    with start_hubspot_sandbox() as sb:
        ids = sb.add_companies(25, start_ms=ms("2026-01-01T00:00:00Z"))
        sb.set_modified("companies", ids, "2026-03-01T00:00:00Z")
        src = make_source(sb, page_size=10, track_deletions=False)
        first = next(src.pull(None))  # a batch ends inside the 25-way tie
        wm = json.loads(first.watermark)["companies"]
        assert len(wm["ids"]) == 10
        rest = [a.external_id for b in src.pull(first.watermark) for a in b.accounts]
        assert sorted(rest + [a.external_id for a in first.accounts]) == sorted(ids)
        # a record modified exactly at the saved watermark is picked up, nothing else is
        last = [b for b in src.pull(None)][-1].watermark
        new = sb.add_companies(1, start_ms=json.loads(last)["companies"]["ts"])
        again = [a.external_id for b in src.pull(last) for a in b.accounts]
        assert again == new


def test_search_cap_rewindows_over_10k_records(engine):
    with start_hubspot_sandbox() as sb:
        ids = sb.add_companies(10_500, start_ms=ms("2026-01-01T00:00:00Z"))
        src = make_source(sb)
        report = ingest(engine, src)
        assert report.fetched == 10_500
        # 50 pages reach the cap; the new window (GTE last ts) re-reads 1 and 500 are left
        assert sb.server.count("POST", "/companies/search") == 50 + 3
        assert not any(
            r.json().get("after") == "10000" for r in sb.server.requests if r.path.endswith(SEARCH)
        )
        with Session(engine) as s:
            got = s.execute(select(Account.external_id)).scalars().all()
        assert sorted(got) == sorted(ids)


def test_more_ties_than_the_cap_are_drained_by_id():
    with start_hubspot_sandbox(search_cap=50) as sb:
        ids = sb.add_companies(180, start_ms=ms("2026-01-01T00:00:00Z"))
        sb.set_modified("companies", ids[10:130], "2026-02-01T00:00:00Z")  # 120 > cap
        src = make_source(sb, page_size=20, client={"search_cap": 50})
        seen = Counter(a.external_id for b in src.pull(None) for a in b.accounts)
        assert seen == Counter(ids)


def test_rate_limit_storm_honours_retry_after(sandbox):
    src = make_source(sandbox)
    sandbox.server.inject(Fault("rate_limit", path_contains=SEARCH, times=3, retry_after=0.05))
    batches = list(src.pull(None))
    assert sum(len(b.accounts) for b in batches) == len(sandbox.company_ids)
    assert src.client.sleeps == [0.05, 0.05, 0.05]


def test_rate_limit_without_retry_after_backs_off_exponentially(sandbox):
    src = make_source(sandbox, client={"backoff": 0.5, "jitter": lambda: 1.0})
    sandbox.server.inject(Fault("rate_limit", path_contains="/owners", times=3, retry_after=None))
    list(src.pull(None))
    assert src.client.sleeps == [0.5, 1.0, 2.0]


def test_server_errors_retry_then_give_up(sandbox):
    src = make_source(sandbox, client={"max_retries": 2})
    sandbox.server.inject(Fault("server_error", path_contains="/deals/search", times=2))
    assert list(src.pull(None))
    sandbox.server.inject(Fault("server_error", path_contains="/deals/search", times=3))
    with pytest.raises(TransientConnectorError, match="502"):
        list(src.pull(None))


def test_timeout_is_retried(sandbox):
    src = make_source(sandbox, client={"timeout": 0.5})
    sandbox.server.inject(Fault("slow", path_contains="/companies/search", delay=1.0))
    batches = list(src.pull(None))
    assert sum(len(b.accounts) for b in batches) == len(sandbox.company_ids)
    assert len(src.client.sleeps) == 1 and sandbox.server.count("POST", "/companies/search") == 2


def test_expired_token_then_rerun_matches_uninterrupted(engine, portfolio):
    with start_hubspot_sandbox(portfolio) as sb:
        ingest(engine, make_source(sb))
        whole = snapshot(engine)
    _empty(engine)
    with start_hubspot_sandbox(portfolio) as sb:
        sb.server.inject(Fault("expired_token", path_contains="/tickets/search"))
        with pytest.raises(AuthConnectorError, match="HUBSPOT_ACCESS_TOKEN"):
            ingest(engine, make_source(sb))
        partial = snapshot(engine)
        assert partial["accounts"] == whole["accounts"] and partial["outcomes"] == whole["outcomes"]
        assert not any(o[1] == "sev1_ticket" for o in partial["observations"])
        ingest(engine, make_source(sb))
    assert snapshot(engine) == whole


def test_killed_mid_run_then_rerun_matches_uninterrupted(engine, portfolio):
    with start_hubspot_sandbox(portfolio) as sb:
        ingest(engine, make_source(sb, page_size=30))
        whole = snapshot(engine)
    _empty(engine)

    with start_hubspot_sandbox(portfolio) as sb:
        for n in (2, 4):  # after the companies, then in the tickets (before their counts)
            with pytest.raises(Killed):
                ingest(engine, make_source(sb, page_size=30), on_batch=kill_after(n))
        ingest(engine, make_source(sb, page_size=30))
    assert snapshot(engine) == whole


def test_malformed_records_are_skipped_with_reason(engine, sandbox):
    sandbox.add_raw(
        "companies",
        {
            "id": "77",
            "archived": False,
            "createdAt": "x",
            "updatedAt": "x",
            "properties": {
                "name": "Broken Co",
                "hs_object_id": "77",
                "hs_lastmodifieddate": "2026-10-31T00:00:00.000Z",
                "healthbot_renewal_date": "next spring",
            },
        },
    )
    sandbox.store.put("tickets", "999001", {"hs_ticket_priority": "URGENT", "createdate": "bad"})
    sandbox.store.associate("tickets", "999001", "companies", "77")
    sandbox.store.put(
        "tickets", "999002", {"hs_ticket_priority": "URGENT", "hs_pipeline_stage": "1"}
    )
    sandbox.store.associate("tickets", "999002", "companies", "77")
    report = ingest(engine, make_source(sandbox))
    errors = snapshot(engine)["errors"]
    assert (("company:77", "unparsable healthbot_renewal_date: 'next spring'"), 1) in errors
    assert (("ticket:999001", "unparsable createdate: 'bad'"), 1) in errors
    with Session(engine) as s:
        assert len(s.execute(select(Account.id)).all()) == len(sandbox.company_ids)
    assert report.skipped["unparsable createdate: 'bad'"] == 1
    # company 77 was skipped, so the sev1 event and open_tickets snapshot of its valid ticket
    # have no account: counted as unmatched
    assert report.stored.unmatched == {"77": 2}


def test_unparsable_timestamp_in_search_page_is_reported(engine, sandbox):
    sandbox.corrupt_next_search()
    report = ingest(engine, make_source(sandbox))
    assert sum(report.skipped.values()) == 1
    assert "unparsable hs_lastmodifieddate" in next(iter(report.skipped))


def test_garbled_response_is_transient(sandbox):
    sandbox.server.inject(Fault("malformed", path_contains="/companies/search"))
    with pytest.raises(TransientConnectorError, match="unparsable response"):
        list(make_source(sandbox).pull(None))


def test_build_source_from_settings(sandbox):
    assert not is_configured(Settings(_env_file=None, hubspot_access_token=None))
    settings = Settings(
        _env_file=None, hubspot_access_token=sandbox.token, hubspot_base_url=sandbox.url
    )
    src = build_source(settings, page_size=50)
    assert is_configured(settings) and src.name == "hubspot"
    assert sum(len(b.accounts) for b in src.pull(None)) == len(sandbox.company_ids)
    wrong = Settings(_env_file=None, hubspot_access_token="nope", hubspot_base_url=sandbox.url)
    with pytest.raises(AuthConnectorError, match="HUBSPOT_ACCESS_TOKEN"):
        list(build_source(wrong).pull(None))


def test_sink_creates_properties_once_and_writes_in_batches_of_100(sandbox):
    sink = HubSpotScoreSink(make_source(sandbox).client)
    assert len(sink.ensure_properties().created) == 5
    assert sandbox.server.count("POST", "/properties/companies/batch/create") == 1
    sandbox.server.reset_counts()
    again = sink.ensure_properties()
    assert (again.created, again.updated) == ([], {}) and len(sandbox.server.requests) == 1
    assert (
        sink.client.create_properties(
            "companies",
            [
                {
                    "name": "health_score",
                    "label": "x",
                    "type": "number",
                    "fieldType": "number",
                    "groupName": "customer_health",
                }
            ],
        )
        == []
    )  # already there: HubSpot's 207 / 409, not an error
    ids = sandbox.add_companies(240)
    at = datetime(2026, 11, 1, 6, tzinfo=UTC)
    rows = [ScoreWrite(i, 71, "monitor", -3.5, "usage down 20%", at) for i in [*ids, "404404"]]
    sandbox.server.reset_counts()
    result = sink.write(rows)
    assert sandbox.server.count("POST", "/companies/batch/update") == 3
    assert sorted(result.ok) == sorted(ids)
    assert list(result.errors) == ["404404"] and result.errors["404404"].code == "OBJECT_NOT_FOUND"
    props = sandbox.store.objects["companies"][ids[0]]["properties"]
    assert (props["health_score"], props["health_tier"], props["health_trend_30d"]) == (
        "71",
        "monitor",
        "-3.5",
    )
    assert props["health_updated_at"] == str(int(at.timestamp() * 1000))
    sandbox.server.inject(Fault("server_error", path_contains="/batch/update", times=10))
    with pytest.raises(TransientConnectorError):  # the outbox keeps the rows
        sink.write(rows[:5])
