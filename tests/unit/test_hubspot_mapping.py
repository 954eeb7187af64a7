"""connectors.hubspot.mapping on recorded-looking CRM v3 payloads."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from connectors.hubspot.mapping import (
    company_records,
    deal_outcomes,
    open_tickets_observation,
    owner_emails,
    parse_date,
    parse_datetime,
    segment_of,
    sev1_observations,
    ticket_state,
)
from health.records import AccountRef, RecordError

COMPANY = {
    "id": "10001",
    "properties": {
        "createdate": "2024-08-01T00:00:00.000Z",
        "domain": "ravenbiotech.com",
        "healthbot_arr": "516600.00",
        "healthbot_last_exec_meeting": "2026-09-12T15:00:00.000Z",
        "healthbot_renewal_date": "2027-08-01",
        "healthbot_segment": "enterprise",
        "hs_lastmodifieddate": "2026-10-30T09:12:44.120Z",
        "hs_lifecyclestage_customer_date": "1722470400000",
        "hs_object_id": "10001",
        "hubspot_owner_id": "90003",
        "name": "Raven Biotech",
        "notes_last_contacted": "2026-10-28T22:38:00.000Z",
        "numberofemployees": "815",
    },
    "createdAt": "2024-08-01T00:00:00.000Z",
    "updatedAt": "2026-10-30T09:12:44.120Z",
    "archived": False,
}
OWNERS = [
    {"id": "90003", "email": "priya.natarajan@healthbot-sandbox.test", "firstName": "P"},
    {"id": "90004", "firstName": "No email"},
]


def deal(**props) -> dict:
    base = {
        "dealname": "Renewal 2026",
        "pipeline": "renewals",
        "dealstage": "closedwon",
        "dealtype": "existingbusiness",
        "amount": "120000.00",
        "healthbot_prior_amount": "100000.00",
        "closedate": "2026-08-01T00:00:00.000Z",
        "hs_lastmodifieddate": "2026-08-01T00:00:00.000Z",
    }
    return {"id": "5000001", "properties": {**base, **props}, "archived": False}


def ticket(**props) -> dict:
    base = {
        "hs_pipeline": "0",
        "hs_pipeline_stage": "1",
        "hs_ticket_priority": "URGENT",
        "createdate": "2026-10-01T08:00:00.000Z",
        "hs_lastmodifieddate": "2026-10-02T08:00:00.000Z",
    }
    return {"id": "100001", "properties": {**base, **props}, "archived": False}


def test_datetimes_accept_iso_and_epoch_ms():
    assert parse_datetime("2026-10-28T22:38:00.000Z") == datetime(2026, 10, 28, 22, 38, tzinfo=UTC)
    assert parse_datetime("1722470400000") == datetime(2024, 8, 1, tzinfo=UTC)
    assert parse_datetime("") is None and parse_datetime(None) is None
    assert parse_date("2027-08-01") == date(2027, 8, 1)
    assert parse_date("1722470400000") == date(2024, 8, 1)
    with pytest.raises(ValueError):
        parse_datetime("yesterday")


def test_company_maps_to_account_and_engagement_events():
    account, events = company_records(COMPANY, owner_emails(OWNERS))
    assert account.source == "hubspot" and account.external_id == "10001"
    assert (account.name, account.domain, account.owner) == (
        "Raven Biotech",
        "ravenbiotech.com",
        "priya.natarajan@healthbot-sandbox.test",
    )
    assert (account.segment, account.arr) == ("enterprise", 516600.0)
    assert (account.customer_since, account.renewal_date) == (date(2024, 8, 1), date(2027, 8, 1))
    assert [(e.signal, e.observed_at, e.account) for e in events] == [
        ("csm_touch", datetime(2026, 10, 28, 22, 38, tzinfo=UTC), AccountRef(crm_id="10001")),
        ("exec_meeting", datetime(2026, 9, 12, 15, tzinfo=UTC), AccountRef(crm_id="10001")),
    ]


def test_company_fallbacks_and_errors():
    bare = {
        "id": "7",
        "properties": {"domain": "x.io", "numberofemployees": "150", "hubspot_owner_id": "555"},
    }
    account, events = company_records(bare, {})
    assert (account.name, account.segment, account.owner, events) == (
        "x.io",
        "mid_market",
        "555",
        [],
    )
    bad = company_records({"id": "8", "properties": {"healthbot_arr": "lots"}}, {})
    assert bad == RecordError("hubspot", "company:8", "unparsable healthbot_arr: 'lots'")
    assert company_records({"properties": {}}, {}).reason == "missing id"
    assert company_records({"id": "9"}, {}).reason == "missing properties"
    deleted, events = company_records(COMPANY, {}, deleted=True)
    assert deleted.deleted and events == []


@pytest.mark.parametrize("employees,segment", [("5000", "enterprise"), ("99", "smb"), (None, None)])
def test_segment_bands(employees, segment):
    assert segment_of({"numberofemployees": employees}) == segment
    assert segment_of({"healthbot_segment": "Mid-Market"}) == "mid_market"


def test_deal_outcomes():
    [won] = deal_outcomes(deal(), ["10001"])
    assert (won.kind, won.occurred_on, won.arr_change, won.external_id) == (
        "renewed",
        date(2026, 8, 1),
        20000.0,
        "5000001",
    )
    assert deal_outcomes(deal(dealtype="expansion"), ["1"])[0].kind == "expanded"
    [lost] = deal_outcomes(deal(dealstage="closedlost", amount="80000"), ["1"])
    assert (lost.kind, lost.arr_change) == ("churned", -80000.0)
    assert deal_outcomes(deal(dealstage="contractsent"), ["1"]) == []
    assert deal_outcomes(deal(dealtype="newbusiness"), ["1"]) == []
    assert deal_outcomes(deal(pipeline="default"), ["1"], renewal_pipeline="renewals") == []
    assert deal_outcomes(deal(), []).reason == "deal has no associated company"
    assert deal_outcomes(deal(closedate=None), ["1"]).reason == "closed deal without closedate"
    assert deal_outcomes(deal(amount="n/a"), ["1"]).reason == "unparsable amount: 'n/a'"


def test_tickets_sev1_and_open_snapshot():
    open_urgent = ticket_state(ticket())
    closed_high = ticket_state(
        ticket(
            hs_ticket_priority="HIGH",
            hs_pipeline_stage="4",
            hs_lastmodifieddate="2026-10-05T00:00:00.000Z",
        )
    )
    low = ticket_state(ticket(hs_ticket_priority="LOW"))
    assert open_urgent.open and not closed_high.open
    [ev] = sev1_observations(open_urgent, ["10001"])
    assert (ev.signal, ev.observed_at, ev.value) == (
        "sev1_ticket",
        datetime(2026, 10, 1, 8, tzinfo=UTC),
        1.0,
    )
    assert sev1_observations(low, ["10001"]) == []
    assert sev1_observations(closed_high, ["1"], sev1=frozenset({"URGENT"})) == []
    snap = open_tickets_observation("10001", [open_urgent, closed_high, low])
    assert (snap.signal, snap.value, snap.observed_at) == (
        "open_tickets",
        2.0,
        datetime(2026, 10, 5, tzinfo=UTC),
    )
    assert open_tickets_observation("10001", []) is None
    assert ticket_state(ticket(createdate="bad")).reason == "unparsable createdate: 'bad'"
    no_stage = ticket_state(ticket(hs_pipeline_stage=None, closed_date="2026-10-03T00:00:00Z"))
    assert not no_stage.open
