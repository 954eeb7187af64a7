"""HubSpot connector, continued: how reads are batched — search pages grouped into one
associations read per 1,000 ids, a first run's open-ticket tally from the ticket pages, and
ties at the saved instant — the real hubspot-api-client over real HTTP against the fake."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import pytest

from connectors.sandbox.hubspot_api import start_hubspot_sandbox
from connectors.sandbox.hubspot_store import ms
from connectors.sandbox.portfolio import generate_portfolio
from health.ingest import ingest
from tests.conftest import _empty
from tests.contract.helpers import Killed
from tests.contract.test_hubspot import make_source, snapshot

SEARCH = "/search"


@pytest.fixture(scope="module")
def portfolio():
    return generate_portfolio(accounts=40, days=120)


@pytest.fixture
def sandbox(portfolio):
    with start_hubspot_sandbox(portfolio) as sb:
        yield sb


def last_watermark(batches) -> str:
    return [b.watermark for b in batches if b.watermark is not None][-1]


def test_first_run_groups_pages_and_tallies_open_tickets_from_them(sandbox, portfolio):
    src = make_source(sandbox, page_size=10)
    batches = list(src.pull(None))
    n_deals, n_tickets = len(portfolio.renewals), len(portfolio.tickets)
    server = sandbox.server
    assert server.count("POST", "/deals/search") == math.ceil(n_deals / 10)
    assert server.count("POST", "/tickets/search") == math.ceil(n_tickets / 10)
    # up to 100 pages (1,000 ids) share one associations read, and one batch
    assert n_deals > 10 and n_tickets > 10
    assert server.count("POST", "/associations/deals/companies") == math.ceil(n_deals / 1000)
    assert server.count("POST", "/associations/tickets/companies") == math.ceil(n_tickets / 1000)
    assert sum(b.fetched for b in batches if b.outcomes) == n_deals
    # every ticket was read: no per-company ticket lists, no re-reads of tickets
    assert server.count("POST", "/associations/companies/tickets") == 0
    assert server.count("POST", "/objects/tickets/batch/read") == 0
    assert src.api_calls == len(server.requests)
    # one count per company with tickets, in one batch after the last ticket page, which is
    # the first to move the ticket cursor
    counted = [b for b in batches if any(o.signal == "open_tickets" for o in b.observations)]
    assert len(counted) == 1
    i = batches.index(counted[0])
    cursors = [json.loads(b.watermark)["tickets"]["ts"] for b in batches[: i + 1]]
    assert cursors[:-1] == [None] * i and cursors[-1] is not None
    store = sandbox.store
    expected = {}
    links = store.assoc[("companies", "tickets")]
    for c in links:
        tickets = [store.objects["tickets"][t] for t in store.associated("companies", "tickets", c)]
        expected[c] = (
            float(sum(t["properties"]["hs_pipeline_stage"] != "4" for t in tickets)),
            max(ms(t["properties"]["hs_lastmodifieddate"]) for t in tickets),
        )
    got = {
        o.account.crm_id: (o.value, int(o.observed_at.timestamp() * 1000))
        for o in counted[0].observations
    }
    assert got == expected


def test_incremental_groups_changed_tickets_into_one_recount(sandbox):
    src = make_source(sandbox, page_size=10)
    wm = last_watermark(list(src.pull(None)))
    store = sandbox.store
    changed = sorted(store.objects["tickets"], key=int)[:25]
    for t in changed:
        sandbox.modify("tickets", t, hs_pipeline_stage="4")
    touched = {c for t in changed for c in store.associated("tickets", "companies", t)}
    others = {t for c in touched for t in store.associated("companies", "tickets", c)}
    sandbox.server.reset_counts()
    batches = list(make_source(sandbox, page_size=10).pull(wm))
    server = sandbox.server
    assert server.count("POST", "/tickets/search") == 3  # 25 changed, 10 per page
    assert server.count("POST", "/associations/tickets/companies") == 1
    assert server.count("POST", "/associations/companies/tickets") == 1
    reads = math.ceil(len(others - set(changed)) / 100)
    assert server.count("POST", "/objects/tickets/batch/read") == reads
    counts = {o.account.crm_id: o for b in batches for o in b.observations}
    assert set(counts) == touched  # only the touched companies are re-counted
    for c, obs in counts.items():
        tickets = [store.objects["tickets"][t] for t in store.associated("companies", "tickets", c)]
        assert obs.value == sum(t["properties"]["hs_pipeline_stage"] != "4" for t in tickets)
        newest = max(ms(t["properties"]["hs_lastmodifieddate"]) for t in tickets)
        assert obs.observed_at == datetime.fromtimestamp(newest / 1000, UTC)


def test_first_run_killed_in_the_tickets_loses_no_counts(engine, portfolio):
    with start_hubspot_sandbox(portfolio) as sb:
        ingest(engine, make_source(sb, page_size=10))
        whole = snapshot(engine)
    _empty(engine)

    def kill_at_a_ticket_batch(report, batch):
        if any(o.signal == "sev1_ticket" for o in batch.observations):
            raise Killed

    with start_hubspot_sandbox(portfolio) as sb:
        with pytest.raises(Killed):
            ingest(engine, make_source(sb, page_size=10), on_batch=kill_at_a_ticket_batch)
        partial = snapshot(engine)
        assert any(o[1] == "sev1_ticket" for o in partial["observations"])
        assert not any(o[1] == "open_tickets" for o in partial["observations"])
        assert json.loads(partial["watermark"][0])["tickets"]["ts"] is None  # re-read them all
        ingest(engine, make_source(sb, page_size=10))
    assert snapshot(engine) == whole


def test_tie_at_the_saved_instant_is_not_read_again():
    with start_hubspot_sandbox() as sb:
        ids = sb.add_companies(40, start_ms=ms("2026-01-01T00:00:00Z"))
        tie = ms("2026-03-01T00:00:00Z")
        sb.set_modified("companies", ids[15:], tie)  # the newest 25 share one instant
        src = make_source(sb, page_size=10, track_deletions=False)
        wm = last_watermark(list(src.pull(None)))
        sb.server.reset_counts()
        assert not any(b.accounts for b in src.pull(wm))
        assert sb.server.count("POST", "/companies/search") == 1  # not ceil(25 / 10)
        # an older record modified at exactly that instant is still found (ids are not ordered)
        sb.set_modified("companies", [ids[0]], tie)
        again = [a.external_id for b in src.pull(wm) for a in b.accounts]
        assert again == [ids[0]]


def test_more_ties_at_the_saved_instant_than_not_in_takes_are_re_read_and_dropped():
    with start_hubspot_sandbox() as sb:
        ids = sb.add_companies(160, start_ms=ms("2026-01-01T00:00:00Z"))
        sb.set_modified("companies", ids[10:], "2026-03-01T00:00:00Z")  # 150 > NOT_IN_LIMIT
        src = make_source(sb, page_size=50, track_deletions=False)
        wm = last_watermark(list(src.pull(None)))
        sb.server.reset_counts()
        assert not any(b.accounts for b in src.pull(wm))
        assert sb.server.count("POST", "/companies/search") == 3  # the documented re-read
        new = sb.add_companies(1, start_ms=json.loads(wm)["companies"]["ts"])
        assert [a.external_id for b in src.pull(wm) for a in b.accounts] == new
