"""Pure Zendesk mapping on recorded-looking payloads."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from connectors.zendesk.mapping import (
    open_tickets,
    org_ref,
    parse_ticket,
    parse_time,
    ticket_observations,
)
from health.records import AccountRef, RecordError

TICKET = {
    "url": "https://acme.zendesk.com/api/v2/tickets/35436.json",
    "id": 35436,
    "external_id": "ahg35h3jh",
    "type": "incident",
    "subject": "Help, my printer is on fire!",
    "priority": "urgent",
    "status": "open",
    "requester_id": 20978392,
    "organization_id": 509974,
    "tags": ["enterprise", "Escalated"],
    "satisfaction_rating": {"id": 1234, "score": "good", "comment": "Great support!"},
    "created_at": "2026-07-20T22:55:29Z",
    "updated_at": "2026-07-21T09:10:00Z",
    "generated_timestamp": 1784624400,
}
METRIC = {"ticket_id": 35436, "solved_at": "2026-07-21T08:00:00Z", "reopens": 0}
REF = AccountRef(crm_id="001A")


def at(s: str) -> datetime:
    return datetime.fromisoformat(s).replace(tzinfo=UTC)


def test_urgent_escalated_rated_ticket():
    t = parse_ticket(TICKET, METRIC)
    assert not isinstance(t, RecordError)
    assert (t.ticket_id, t.org_id, t.is_open, t.escalated) == (35436, 509974, True, True)
    obs = {(o.signal, o.observed_at, o.value) for o in ticket_observations(t, REF)}
    assert obs == {
        ("sev1_ticket", at("2026-07-20T22:55:29"), 1.0),
        ("escalation", at("2026-07-20T22:55:29"), 1.0),
        ("csat", at("2026-07-21T08:00:00"), 100.0),  # at the solve time, not updated_at
    }
    assert all(o.source == "zendesk" and o.account == REF for o in ticket_observations(t, REF))


@pytest.mark.parametrize(
    ("changes", "signals"),
    [
        ({"priority": "normal", "tags": []}, {"csat"}),
        ({"priority": None, "tags": None, "satisfaction_rating": {"score": "offered"}}, set()),
        ({"satisfaction_rating": {"score": "bad"}, "tags": [], "priority": "low"}, {"csat"}),
        ({"status": "deleted"}, set()),
    ],
)
def test_signals_follow_ticket_fields(changes, signals):
    t = parse_ticket({**TICKET, **changes})
    assert not isinstance(t, RecordError)
    assert {o.signal for o in ticket_observations(t, REF)} == signals


def test_csat_without_metric_set_uses_updated_at_and_bad_is_zero():
    t = parse_ticket({**TICKET, "satisfaction_rating": {"score": "bad"}})
    csat = [o for o in ticket_observations(t, REF) if o.signal == "csat"]  # type: ignore[arg-type]
    assert [(o.observed_at, o.value) for o in csat] == [(at("2026-07-21T09:10:00"), 0.0)]


@pytest.mark.parametrize(
    ("status", "is_open"),
    [
        ("new", True),
        ("open", True),
        ("pending", True),
        ("hold", True),
        ("solved", False),
        ("closed", False),
        ("deleted", False),
    ],
)
def test_open_statuses(status, is_open):
    t = parse_ticket({**TICKET, "status": status})
    assert not isinstance(t, RecordError) and t.is_open is is_open


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"id": None}, "without an integer id"),
        ({"id": "35436"}, "without an integer id"),
        ({"created_at": "31/02/2026"}, "unparsable created_at"),
        ({"updated_at": None}, "unparsable updated_at"),
        ({"created_at": "2026-07-20T22:55:29"}, "without a time zone"),
        ({"status": "weird"}, "unknown status 'weird'"),
        ({"organization_id": "509974"}, "organization_id is not an integer"),
        ({"tags": "escalated"}, "tags is not a list"),
    ],
)
def test_malformed_tickets_become_record_errors(changes, reason):
    err = parse_ticket({**TICKET, **changes})
    assert isinstance(err, RecordError) and reason in err.reason
    assert err.source == "zendesk" and err.key.startswith("ticket:")


def test_not_an_object_and_bad_metric_date():
    assert isinstance(parse_ticket(["x"]), RecordError)
    err = parse_ticket(TICKET, {"ticket_id": 35436, "solved_at": "yesterday"})
    assert isinstance(err, RecordError) and "solved_at" in err.reason


def test_ticket_without_organization_parses():
    t = parse_ticket({**TICKET, "organization_id": None})
    assert not isinstance(t, RecordError) and t.org_id is None


@pytest.mark.parametrize(
    ("org", "ref"),
    [
        (
            {"id": 1, "external_id": "001A", "domain_names": ["Acme.com"]},
            AccountRef(crm_id="001A", domain="acme.com"),
        ),
        (
            {"id": 1, "external_id": None, "domain_names": ["acme.com", "acme.io"]},
            AccountRef(domain="acme.com"),
        ),
        ({"id": 1, "external_id": " ", "domain_names": []}, AccountRef(crm_id="zendesk-org:1")),
        ({"id": 1, "external_id": 42}, AccountRef(crm_id="42")),
        (None, AccountRef(crm_id="zendesk-org:1")),
    ],
)
def test_org_ref(org, ref):
    assert org_ref(org, 1) == ref


def test_open_tickets_snapshot_and_time_parsing():
    o = open_tickets(REF, 3, at("2026-07-21T09:10:00"))
    assert (o.signal, o.value, o.source) == ("open_tickets", 3.0, "zendesk")
    assert parse_time("2026-07-21T11:10:00+02:00") == at("2026-07-21T09:10:00")
    with pytest.raises(ValueError):
        parse_time(1784624400)


def test_an_older_watermark_s_open_tickets_age_from_when_the_source_next_sees_them():
    from datetime import UTC, datetime, timedelta

    from connectors.zendesk.source import _State

    old = '{"cursor": "c1", "open": {"7": [101, 102]}}'  # ids only: creation unknown
    state = _State(old)
    first = datetime(2026, 11, 1, tzinfo=UTC)
    assert state.oldest_days(7, first) == 0.0
    assert state.oldest_days(7, first + timedelta(days=3)) == 3.0  # not 0 for ever
    assert '"101":' in state.dumps()  # the start is kept in the watermark
