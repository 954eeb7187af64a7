"""connectors.hubspot.mapping on recorded-looking CRM v3 payloads."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from connectors.hubspot.mapping import (
    SEV1_PRIORITIES,
    archived_champion_departures,
    associated_ids,
    champion_departures,
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
    assert {"URGENT"} == SEV1_PRIORITIES  # like Zendesk urgent / Salesforce Critical
    assert sev1_observations(ticket_state(ticket(hs_ticket_priority="HIGH")), ["1"]) == []
    assert len(sev1_observations(closed_high, ["1"], sev1=frozenset({"HIGH", "URGENT"}))) == 1
    assert sev1_observations(closed_high, ["1"], sev1=frozenset({"URGENT"})) == []
    snap = open_tickets_observation("10001", [open_urgent, closed_high, low])
    assert (snap.signal, snap.value, snap.observed_at) == (
        "open_tickets",
        2.0,
        datetime(2026, 10, 5, tzinfo=UTC),
    )
    assert open_tickets_observation("10001", []) is None
    deleted_at = datetime(2026, 10, 9, tzinfo=UTC)  # a ticket deleted later than any change
    later = open_tickets_observation("10001", [closed_high, low], at=deleted_at)
    assert (later.value, later.observed_at) == (1.0, deleted_at)
    assert open_tickets_observation("10001", [], at=deleted_at).value == 0.0
    assert ticket_state(ticket(createdate="bad")).reason == "unparsable createdate: 'bad'"
    no_stage = ticket_state(ticket(hs_pipeline_stage=None, closed_date="2026-10-03T00:00:00Z"))
    assert not no_stage.open


def versions(*pairs: tuple[str, str]) -> list[dict]:
    """(value, timestamp) oldest first -> HubSpot's propertiesWithHistory list (newest first)."""
    return [
        {"value": v, "timestamp": t, "sourceType": "CRM_UI", "sourceId": "userId:1"}
        for v, t in reversed(pairs)
    ]


def contact(left=(), primary=(), **props) -> dict:
    base = {
        "healthbot_champion": "true",
        "healthbot_left_company": left[-1][0] if left else None,
        "associatedcompanyid": primary[-1][0] if primary else None,
        "lastmodifieddate": "2026-10-20T10:00:00.000Z",
        "hs_object_id": "700001",
    }
    history = {}
    if left:
        history["healthbot_left_company"] = versions(*left)
    if primary:
        history["associatedcompanyid"] = versions(*primary)
    return {"id": "700001", "properties": {**base, **props}, "propertiesWithHistory": history}


T0, T1, T2, T3 = (f"2026-0{m}-01T09:30:00.000Z" for m in (3, 5, 7, 9))


def when(stamp: str) -> datetime:
    return parse_datetime(stamp)


def left_events(out) -> list[tuple[str, datetime]]:
    assert all(o.signal == "champion_left" and o.value == 1.0 for o in out)
    return [(o.account.crm_id, o.observed_at) for o in out]


def test_champion_flagged_left_at_the_flag_change():
    c = contact(left=[("false", T0), ("true", T1)], primary=[("10001", T0)])
    assert left_events(champion_departures(c, ["10001", "10002"])) == [
        ("10001", when(T1)),
        ("10002", when(T1)),  # still associated when flagged: left too
    ]
    # later unrelated edits (lastmodifieddate moves) do not move the event
    c["properties"]["lastmodifieddate"] = T3
    assert left_events(champion_departures(c, ["10001"])) == [("10001", when(T1))]


def test_champion_moving_company_or_losing_it():
    moved = contact(primary=[("10001", T0), ("10002", T1)])
    assert left_events(champion_departures(moved)) == [("10001", when(T1))]
    cleared = contact(primary=[("10001", T0), ("", T1), ("10003", T2)])
    assert left_events(champion_departures(cleared)) == [("10001", when(T1))]
    # flagged left, then unassociated: one departure, at the flag
    both = contact(left=[("true", T1)], primary=[("10001", T0), ("", T2)])
    assert left_events(champion_departures(both)) == [("10001", when(T1))]
    # came back (flag reset) and left again: two departures
    again = contact(left=[("false", T0), ("true", T1), ("false", T2), ("true", T3)])
    again["properties"]["associatedcompanyid"] = "10001"
    again["propertiesWithHistory"]["associatedcompanyid"] = versions(("10001", T0))
    assert [a for _, a in left_events(champion_departures(again))] == [when(T1), when(T3)]


def test_champion_no_departure_cases():
    assert champion_departures(contact(primary=[("10001", T0)])) == []  # just joined
    created_gone = contact(left=[("true", T0)], primary=[("10001", T0)])
    assert champion_departures(created_gone) == []  # the starting state is no event
    plain = contact(left=[("false", T0), ("true", T1)], healthbot_champion="false")
    assert champion_departures(plain) == []
    no_history = contact(healthbot_left_company="true", associatedcompanyid="10001")
    del no_history["propertiesWithHistory"]
    assert left_events(champion_departures(no_history)) == [
        ("10001", when("2026-10-20T10:00:00.000Z"))
    ]  # without histories: at the last modification


def test_champion_errors():
    bad = contact(left=[("false", T0), ("true", "soon")])
    out = champion_departures(bad)
    assert out == RecordError("hubspot", "contact:700001", "unparsable timestamp: 'soon'")
    assert champion_departures({"properties": {}}).reason == "missing id"


def test_archived_champion():
    gone = {
        "id": "700002",
        "archived": True,
        "archivedAt": T2,
        "properties": {"healthbot_champion": "true", "associatedcompanyid": "10001"},
        "associations": {"companies": {"results": [{"id": "10002", "type": "contact_to_company"}]}},
    }
    assert associated_ids(gone, "companies") == ["10002"]
    assert left_events(archived_champion_departures(gone, ["10002"])) == [
        ("10001", when(T2)),
        ("10002", when(T2)),
    ]
    already = {**gone, "properties": {**gone["properties"], "healthbot_left_company": "true"}}
    assert archived_champion_departures(already) == []
    no_date = {**gone, "archivedAt": None}
    assert archived_champion_departures(no_date).reason == "missing archivedAt"
