"""Salesforce mapping: recorded-looking REST payloads -> records (pure, no HTTP)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from connectors.salesforce import mapping as mp
from connectors.salesforce.source import load_mapping
from health.records import AccountRef, RecordError

M = load_mapping(None)
ACC = "001Dn00000AbCdEIAV"


def attrs(obj: str, rid: str) -> dict:
    return {"type": obj, "url": f"/services/data/v59.0/sobjects/{obj}/{rid}"}


ACCOUNT = {
    "attributes": attrs("Account", ACC),
    "Id": ACC,
    "IsDeleted": False,
    "SystemModstamp": "2026-10-01T08:15:30.000+0000",
    "Name": "Acme Logistics ",
    "Website": "https://www.Acme.com/about",
    "Owner": {"attributes": attrs("User", "005Dn000001xYz1IAE"), "Email": "dana@vendor.test"},
    "NumberOfEmployees": 350,
    "ARR__c": 120000.0,
    "Segment__c": "Mid-Market",
    "Type": "Customer - Direct",
    "Contracts": {
        "totalSize": 2,
        "done": True,
        "records": [
            {
                "attributes": attrs("Contract", "800A"),
                "Id": "800A",
                "StartDate": "2023-02-01",
                "EndDate": "2025-01-31",
                "Status": "Activated",
            },
            {
                "attributes": attrs("Contract", "800B"),
                "Id": "800B",
                "StartDate": "2025-02-01",
                "EndDate": "2027-01-31",
                "Status": "Activated",
            },
        ],
    },
}


def test_account_record_reads_mapped_fields_and_contracts():
    rec = mp.account_record(ACCOUNT, M)
    assert not isinstance(rec, RecordError)
    assert (rec.external_id, rec.name, rec.domain, rec.owner) == (
        ACC,
        "Acme Logistics",
        "acme.com",
        "dana@vendor.test",
    )
    assert (rec.segment, rec.arr, rec.deleted) == ("mid_market", 120000.0, False)
    assert rec.customer_since == date(2023, 2, 1) and rec.renewal_date == date(2027, 1, 31)


def test_segment_falls_back_to_type_then_employee_bands():
    no_segment = {**ACCOUNT, "Segment__c": None}
    assert mp.account_record(no_segment, M).segment == "mid_market"  # 350 employees
    assert mp.account_record({**no_segment, "NumberOfEmployees": 5000}, M).segment == "enterprise"
    assert (
        mp.account_record({**no_segment, "Type": "SMB", "NumberOfEmployees": 5000}, M).segment
        == "smb"
    )
    assert mp.account_record({**no_segment, "NumberOfEmployees": None}, M).segment is None


def test_deleted_account_and_malformed_accounts():
    assert mp.account_record({**ACCOUNT, "IsDeleted": True, "Contracts": None}, M).deleted is True
    bad = mp.account_record({**ACCOUNT, "ARR__c": "lots"}, M)
    assert isinstance(bad, RecordError) and bad.reason == "ARR__c is not a number: 'lots'"
    assert bad.key == f"Account:{ACC}" and bad.source == "salesforce"
    assert mp.account_record({**ACCOUNT, "Id": None}, M).reason == "missing Id"
    assert (
        "not a date"
        in mp.account_record(
            {**ACCOUNT, "Contracts": {"records": [{"StartDate": "01/02/2023"}]}}, M
        ).reason
    )


def opp(**kw) -> dict:
    base = {
        "attributes": attrs("Opportunity", "006A"),
        "Id": "006A",
        "AccountId": ACC,
        "Type": "Renewal",
        "IsClosed": True,
        "IsWon": True,
        "CloseDate": "2026-06-30",
        "Amount": 110000.0,
        "Prior_ARR__c": 100000.0,
    }
    return {**base, **kw}


def test_renewal_outcomes():
    won = mp.outcome_record(opp(), M)
    assert (won.kind, won.occurred_on, won.arr_change) == ("expanded", date(2026, 6, 30), 10000.0)
    assert won.account == AccountRef(crm_id=ACC) and won.external_id == "006A"
    assert mp.outcome_record(opp(Amount=104000.0), M).kind == "renewed"  # a price uplift
    assert mp.outcome_record(opp(Amount=80000.0), M).arr_change == -20000.0
    lost = mp.outcome_record(opp(IsWon=False, Amount=100000.0), M)
    assert (lost.kind, lost.arr_change) == ("churned", -100000.0)
    assert mp.outcome_record(opp(Type="New Business"), M) is None
    assert mp.outcome_record(opp(IsClosed=False, IsWon=False), M) is None
    assert isinstance(mp.outcome_record(opp(CloseDate=None), M), RecordError)


def case(**kw) -> dict:
    base = {
        "attributes": attrs("Case", "500A"),
        "Id": "500A",
        "AccountId": ACC,
        "IsDeleted": False,
        "CreatedDate": "2026-09-01T10:00:00.000+0000",
        "ClosedDate": "2026-09-02T11:30:00.000+0000",
        "IsClosed": True,
        "Priority": "Critical",
        "IsEscalated": True,
        "CSAT__c": "Bad",
        "SystemModstamp": "2026-09-02T11:30:00.000+0000",
    }
    return {**base, **kw}


def test_case_events():
    obs = mp.case_observations(case(), M)
    created = datetime(2026, 9, 1, 10, tzinfo=UTC)
    assert [(o.signal, o.observed_at, o.value) for o in obs] == [
        ("sev1_ticket", created, 1.0),
        ("escalation", created, 1.0),
        ("csat", datetime(2026, 9, 2, 11, 30, tzinfo=UTC), 0.0),
    ]
    quiet = mp.case_observations(case(Priority="High", IsEscalated=False, CSAT__c="Good"), M)
    assert [(o.signal, o.value) for o in quiet] == [("csat", 100.0)]
    assert mp.case_observations(case(IsDeleted=True), M) == []
    assert mp.case_observations(case(AccountId=None), M) == []
    assert mp.case_observations(case(CreatedDate="yesterday"), M).reason.startswith("CreatedDate")


def test_activities():
    task = {
        "attributes": attrs("Task", "00TA"),
        "Id": "00TA",
        "AccountId": ACC,
        "CompletedDateTime": "2026-09-03T15:00:00.000+0000",
        "ActivityDate": "2026-09-03",
        "Executive_Meeting__c": False,
    }
    assert [o.signal for o in mp.activity_observations(task, M)] == ["csm_touch"]
    undated = {**task, "CompletedDateTime": None}
    assert mp.activity_observations(undated, M)[0].observed_at == datetime(2026, 9, 3, tzinfo=UTC)
    event = {
        "attributes": attrs("Event", "00UA"),
        "Id": "00UA",
        "AccountId": ACC,
        "StartDateTime": "2026-09-04T16:00:00Z",
        "Executive_Meeting__c": True,
    }
    out = mp.activity_observations(event, M)
    assert [(o.signal, o.observed_at.hour) for o in out] == [
        ("csm_touch", 16),
        ("exec_meeting", 16),
    ]


def test_champion_departures():
    contact = {
        "attributes": attrs("Contact", "003A"),
        "Id": "003A",
        "AccountId": ACC,
        "IsDeleted": False,
        "Champion__c": True,
        "Left_Company__c": True,
        "Left_Date__c": "2026-08-15",
        "SystemModstamp": "2026-08-16T09:00:00.000+0000",
    }
    (left,) = mp.contact_observations(contact, M)
    assert (left.signal, left.observed_at) == ("champion_left", datetime(2026, 8, 15, tzinfo=UTC))
    assert mp.contact_observations({**contact, "Left_Company__c": False}, M) == []
    assert mp.contact_observations({**contact, "Champion__c": False}, M) == []
    deleted = {**contact, "Left_Company__c": False, "Left_Date__c": None, "IsDeleted": True}
    assert mp.contact_observations(deleted, M)[0].observed_at == datetime(
        2026, 8, 16, 9, tzinfo=UTC
    )
    # the checkbox has a value (false): a bounced email does not override it
    bounced = {**contact, "Left_Company__c": False, "EmailBouncedDate": "2026-08-01T10:00:00Z"}
    assert mp.contact_observations(bounced, M) == []


def test_champion_departures_with_standard_fields_only():
    """Champion__c, Left_Company__c and Left_Date__c missing: every Contact read is a primary
    contact role (the query selected them) and a bounced email is the departure."""
    m = mapping_without("Champion__c", "Left_Company__c", "Left_Date__c")
    assert (m.champion, m.contact_left, m.contact_left_date) == (
        mp.PRIMARY_ROLE,
        ("EmailBouncedDate",),
        ("EmailBouncedDate",),
    )
    assert m.mapped_fields()["Contact"] == ["EmailBouncedDate", "EmailBouncedDate"]
    contact = {
        "attributes": attrs("Contact", "003B"),
        "Id": "003B",
        "AccountId": ACC,
        "IsDeleted": False,
        "EmailBouncedDate": "2026-08-15T14:30:00.000+0000",
        "SystemModstamp": "2026-08-16T09:00:00.000+0000",
    }
    (left,) = mp.contact_observations(contact, m)
    assert left.observed_at == datetime(2026, 8, 15, 14, 30, tzinfo=UTC)
    assert mp.contact_observations({**contact, "EmailBouncedDate": None}, m) == []
    deleted = {**contact, "EmailBouncedDate": None, "IsDeleted": True}
    assert mp.contact_observations(deleted, m)[0].observed_at == datetime(
        2026, 8, 16, 9, tzinfo=UTC
    )
    broken = {**contact, "EmailBouncedDate": "15/08/2026 14:30"}
    assert isinstance(mp.contact_observations(broken, m), RecordError)


def mapping_without(*fields: str) -> mp.FieldMapping:
    from connectors.salesforce.fields import degrade

    m, notices, problems = degrade(M, [("Contact", f) for f in fields])
    assert problems == [] and len(notices) == len(fields)
    return m


def test_datetimes_and_cursor():
    assert mp.parse_datetime("2026-01-01T12:00:00.123+0000", "x") == datetime(
        2026, 1, 1, 12, 0, 0, 123000, tzinfo=UTC
    )
    assert mp.parse_datetime("2026-01-01T14:00:00+02:00", "x").hour == 12
    with pytest.raises(mp.Malformed):
        mp.parse_datetime("2026-01-01T12:00:00", "x")  # no zone
    assert mp.cursor_of(ACCOUNT) == ("2026-10-01T08:15:30.000Z", ACC)
    assert mp.cursor_of({"Id": ACC}) is None


def test_mapping_file_errors():
    with pytest.raises(mp.MappingError, match="unknown section"):
        mp.mapping_from_yaml("acount: {name: Name}", "m.yaml")
    with pytest.raises(mp.MappingError, match="not one of"):
        mp.mapping_from_yaml(
            "account: {name: Name, segment_values: {big: huge}}\ncontact: {champion: C__c}",
            "m.yaml",
        )
    m = mp.mapping_from_yaml(
        "account: {name: Name, arr: AnnualRevenue}\ncontact: {champion: C__c}", "m.yaml"
    )
    assert m.arr_fields == ("AnnualRevenue",) and m.mapped_fields()["Case"] == []
