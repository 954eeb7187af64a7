"""HubSpot connector, continued: champion contacts, deleted tickets and deals, sev-1 priorities,
HTTPS — the real hubspot-api-client over real HTTP(S) against the local fake."""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlmodel import Session

from connectors.base import PermanentConnectorError
from connectors.hubspot.source import build_source
from connectors.sandbox.hubspot_api import start_hubspot_sandbox
from connectors.sandbox.hubspot_store import ms
from connectors.sandbox.portfolio import generate_portfolio
from health.ingest import ingest
from health.models import Account, Observation, Outcome
from health.settings import Settings
from tests.conftest import _empty
from tests.contract.helpers import Killed, kill_after
from tests.contract.test_hubspot import make_source, snapshot

NOTHING_NEW = 7  # 4 searches + 3 archived lists


@pytest.fixture(scope="module")
def portfolio():
    return generate_portfolio(accounts=40, days=120)


@pytest.fixture
def sandbox(portfolio):
    with start_hubspot_sandbox(portfolio) as sb:
        yield sb


def at_ms(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, UTC)


def events(engine, signal: str) -> list[tuple[str, datetime, float]]:
    with Session(engine) as s:
        rows = s.execute(
            select(Account.external_id, Observation.observed_at, Observation.value)
            .join(Account, Account.id == Observation.account_id)
            .where(Observation.signal == signal)
        ).all()
    return sorted((a, o.astimezone(UTC), v) for a, o, v in rows)


def champions(sb, portfolio, *, left: bool = False) -> list[tuple[str, str]]:
    """(contact id, company id) of the portfolio's champions who have (not) left."""
    return [
        (sb.contact_ids[c.external_id], sb.company_ids[c.account_id])
        for c in portfolio.contacts
        if c.is_champion and (c.left_on is not None) == left
    ]


def test_champion_flagged_left_is_an_event_at_that_change(engine, sandbox, portfolio):
    src = make_source(sandbox)
    ingest(engine, src)
    before = events(engine, "champion_left")
    (contact, company), (other, _) = champions(sandbox, portfolio)[:2]
    stamp = sandbox.contact_leaves(contact)["properties"]["lastmodifieddate"]
    sandbox.modify("contacts", other, jobtitle="VP Ops")  # a champion's unrelated change
    sandbox.server.reset_counts()
    report = ingest(engine, src)
    assert report.fetched == 2
    assert events(engine, "champion_left") == sorted([*before, (company, at_ms(ms(stamp)), 1.0)])
    server = sandbox.server
    assert server.count("POST", "/objects/contacts/batch/read") == 1  # both contacts, one read
    assert server.count("POST", "/associations/contacts/companies") == 1  # only the leaver
    assert len(server.requests) == NOTHING_NEW + 2
    # a later edit of the departed champion re-reads it but adds no second departure
    sandbox.modify("contacts", contact, jobtitle="Former champion")
    assert ingest(engine, src).fetched == 1
    assert len(events(engine, "champion_left")) == len(before) + 1


def test_champion_moving_away_leaves_the_old_company(engine, sandbox, portfolio):
    src = make_source(sandbox)
    ingest(engine, src)
    before = events(engine, "champion_left")
    contact, old = champions(sandbox, portfolio)[0]
    new = next(c for c in sandbox.company_ids.values() if c != old)
    stamp = sandbox.move_contact(contact, new)["properties"]["lastmodifieddate"]
    sandbox.server.reset_counts()
    assert ingest(engine, src).fetched == 1
    assert events(engine, "champion_left") == sorted([*before, (old, at_ms(ms(stamp)), 1.0)])
    assert sandbox.server.count("POST", "/associations/") == 0  # nobody flagged as left
    assert len(sandbox.server.requests) == NOTHING_NEW + 1


def test_non_champion_changes_are_not_fetched(engine, sandbox, portfolio):
    src = make_source(sandbox)
    ingest(engine, src)
    plain = next(
        sandbox.contact_ids[c.external_id] for c in portfolio.contacts if not c.is_champion
    )
    sandbox.contact_leaves(plain)
    sandbox.server.reset_counts()
    assert ingest(engine, src).fetched == 0 and len(sandbox.server.requests) == NOTHING_NEW


def test_deleted_champion_is_an_event_at_archived_at(engine, sandbox, portfolio):
    src = make_source(sandbox)
    ingest(engine, src)
    before = events(engine, "champion_left")
    contact, company = champions(sandbox, portfolio)[0]
    gone_already, _ = champions(sandbox, portfolio, left=True)[0]
    plain = next(
        sandbox.contact_ids[c.external_id] for c in portfolio.contacts if not c.is_champion
    )
    archived = sandbox.delete("contacts", contact)["archivedAt"]
    sandbox.delete("contacts", gone_already)  # its departure was reported when flagged
    sandbox.delete("contacts", plain)
    report = ingest(engine, src)
    assert report.fetched == 3
    assert events(engine, "champion_left") == sorted([*before, (company, at_ms(ms(archived)), 1.0)])
    assert ingest(engine, src).fetched == 0  # the deletions are not re-read


def test_many_champions_share_one_timestamp_across_pages(engine, sandbox, portfolio):
    src = make_source(sandbox, page_size=20)
    ingest(engine, src)
    before = len(events(engine, "champion_left"))
    company = next(iter(sandbox.company_ids.values()))
    ids = [str(800_000 + k) for k in range(130)]
    for cid in ids:
        sandbox.store.put(
            "contacts", cid, {"healthbot_champion": "true", "associatedcompanyid": company}
        )
        sandbox.store.associate("contacts", cid, "companies", company)
    for cid in ids:
        sandbox.contact_leaves(cid)
    sandbox.set_modified("contacts", ids[10:100], "2026-11-05T00:00:00Z")  # 90 share one ms
    sandbox.server.reset_counts()
    seen = Counter()
    for batch in src.pull(snapshot(engine)["watermark"][0]):
        seen.update(o.observed_at for o in batch.observations if o.signal == "champion_left")
    # every leaver exactly once, at its flag's change (not at the later bulk touch)
    assert sum(seen.values()) == 130 and max(seen.values()) == 1
    server = sandbox.server
    assert server.count("POST", "/contacts/search") == math.ceil(130 / 20)
    assert server.count("POST", "/objects/contacts/batch/read") == math.ceil(130 / 20)  # 20 <= 50
    assert len(events(engine, "champion_left")) == before


def test_deleted_ticket_leaves_the_open_count(engine, sandbox, portfolio):
    src = make_source(sandbox)
    ingest(engine, src)
    ids = sandbox.company_ids
    open_now = Counter(
        ids[t.account_id] for t in portfolio.tickets if t.status not in ("solved", "closed")
    )
    company, n_open = open_now.most_common(1)[0]
    ticket = next(
        t.external_id
        for t in portfolio.tickets
        if ids[t.account_id] == company and t.status not in ("solved", "closed")
    )
    sev1_before = events(engine, "sev1_ticket")
    archived = sandbox.delete("tickets", ticket)["archivedAt"]
    sandbox.server.reset_counts()
    assert ingest(engine, src).fetched == 1
    latest = max(e for e in events(engine, "open_tickets") if e[0] == company)
    assert latest[1:] == (at_ms(ms(archived)), float(n_open - 1))
    assert events(engine, "sev1_ticket") == sev1_before  # it happened; deletion is no retraction
    server = sandbox.server
    assert server.count("POST", "/associations/companies/tickets") == 1
    n_tickets = sum(ids[t.account_id] == company for t in portfolio.tickets)
    assert server.count("POST", "/objects/tickets/batch/read") <= math.ceil(n_tickets / 100)
    assert len(server.requests) <= NOTHING_NEW + 1 + math.ceil(n_tickets / 100)
    # deleting every open ticket of a company brings its count to 0
    rest = [
        t.external_id
        for t in portfolio.tickets
        if ids[t.account_id] == company
        and t.status not in ("solved", "closed")
        and t.external_id != ticket
    ]
    for t in rest:
        sandbox.delete("tickets", t)
    assert ingest(engine, src).fetched == len(rest)
    assert max(e for e in events(engine, "open_tickets") if e[0] == company)[2] == 0.0
    assert ingest(engine, src).fetched == 0


def test_deleted_deal_keeps_its_outcome(engine, sandbox):
    src = make_source(sandbox)
    ingest(engine, src)
    with Session(engine) as s:
        outcomes = s.execute(select(Outcome.kind, Outcome.occurred_on)).all()
    closed = next(
        d
        for d, o in sandbox.store.objects["deals"].items()
        if o["properties"]["dealstage"] in ("closedwon", "closedlost")
    )
    sandbox.delete("deals", closed)
    sandbox.server.reset_counts()
    assert ingest(engine, src).fetched == 0
    assert sandbox.server.count("GET", "/objects/deals") == 0  # archived deals are not read
    with Session(engine) as s:
        assert s.execute(select(Outcome.kind, Outcome.occurred_on)).all() == outcomes


def test_sev1_priorities_are_configurable(sandbox, portfolio):
    def sev1(src) -> int:
        return sum(o.signal == "sev1_ticket" for b in src.pull(None) for o in b.observations)

    ids = sandbox.company_ids
    urgent = {
        (ids[t.account_id], t.created_at) for t in portfolio.tickets if t.priority == "urgent"
    }
    high = {
        (ids[t.account_id], t.created_at)
        for t in portfolio.tickets
        if t.priority in ("high", "urgent")
    }
    assert len(high) > len(urgent)
    assert sev1(make_source(sandbox)) == len(urgent)
    assert sev1(make_source(sandbox, sev1_priorities=frozenset({"high", "URGENT"}))) == len(high)


def mess_up(sb, portfolio) -> None:
    """The same changes in every sandbox: departures, a move, deleted tickets and contacts."""
    stay = champions(sb, portfolio)
    sb.contact_leaves(stay[0][0])
    sb.move_contact(stay[1][0], stay[2][1])
    sb.delete("contacts", stay[3][0])
    for t in portfolio.tickets[:5]:
        sb.delete("tickets", t.external_id)


def test_killed_mid_run_then_rerun_matches_uninterrupted(engine, portfolio):
    with start_hubspot_sandbox(portfolio) as sb:
        mess_up(sb, portfolio)
        ingest(engine, make_source(sb, page_size=20))
        whole = snapshot(engine)
    assert any(o[1] == "champion_left" for o in whole["observations"])
    _empty(engine)

    with start_hubspot_sandbox(portfolio) as sb:
        mess_up(sb, portfolio)
        n_batches = len(list(make_source(sb, page_size=20).pull(None)))
        for n in (n_batches - 4, 2):  # in the contacts, then (resumed) in the deletions
            with pytest.raises(Killed):
                ingest(engine, make_source(sb, page_size=20), on_batch=kill_after(n))
        ingest(engine, make_source(sb, page_size=20))
    assert snapshot(engine) == whole


def test_https_with_a_ca_bundle(engine, portfolio, monkeypatch):
    with start_hubspot_sandbox(portfolio, tls=True) as sb:
        assert sb.url.startswith("https://") and sb.ca_path
        settings = Settings(
            _env_file=None,
            hubspot_access_token=sb.token,
            hubspot_base_url=sb.url,
            requests_ca_bundle=sb.ca_path,
        )
        report = ingest(engine, build_source(settings))
        assert report.api_calls == len(sb.server.requests) >= NOTHING_NEW
        with Session(engine) as s:
            assert len(s.execute(select(Account.id)).all()) == len(portfolio.accounts)
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", sb.ca_path)  # read by Settings
        assert Settings(_env_file=None).requests_ca_bundle == sb.ca_path
        monkeypatch.delenv("REQUESTS_CA_BUNDLE")
        untrusted = settings.model_copy(update={"requests_ca_bundle": None})
        with pytest.raises(PermanentConnectorError, match="REQUESTS_CA_BUNDLE"):
            list(build_source(untrusted).pull(None))


def test_portal_without_champion_property_syncs_the_rest(engine):
    with start_hubspot_sandbox(champion_properties=False) as sb:
        ids = sb.add_companies(3)
        report = ingest(engine, make_source(sb))
        assert report.fetched == 3 + 1 and report.stored.upserted == 3  # + the skipped contacts
        [reason] = report.skipped
        assert "healthbot_champion" in reason and "400" in reason
        assert sb.server.count("GET", "/crm/v3/objects/") == 3  # deletions still tracked
        sb.store.define("contacts", "healthbot_champion", "Champion", "bool", "booleancheckbox")
        champion = {"healthbot_champion": "true", "associatedcompanyid": ids[0]}
        sb.store.put("contacts", "700001", champion)
        sb.store.associate("contacts", "700001", "companies", ids[0])
        sb.move_contact("700001", ids[1])
        report = ingest(engine, make_source(sb))
        assert not report.skipped and events(engine, "champion_left")[0][0] == ids[0]
