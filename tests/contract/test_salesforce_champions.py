"""Champions in an org with Salesforce's standard fields only: the primary contact roles on
opportunities are the champions (one Contact query with a semi-join), a bounced email or a
deletion is a departure, and an incremental run also reads the primary roles changed since.
With Champion__c the requests are today's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from simple_salesforce.exceptions import SalesforceMalformedRequest

from connectors.base import PermanentConnectorError
from connectors.salesforce.source import load_mapping
from connectors.sandbox.salesforce_api import start_salesforce_sandbox
from connectors.sandbox.salesforce_seed import sf_ts
from health.ingest import ingest
from tests.contract.test_salesforce import PORTFOLIO, _raw, make_source, queries, rows

ROLE = "OpportunityContactRole"
SEMI_JOIN = f"Id IN (SELECT ContactId FROM {ROLE} WHERE IsPrimary = true)"


def departures(engine) -> set[tuple[str, str]]:
    """(account, instant to the second) of every champion_left stored."""
    found = rows(
        engine,
        "SELECT a.external_id, o.observed_at FROM observation o JOIN account a "
        "ON a.id = o.account_id WHERE o.signal = 'champion_left'",
    )
    return {(acc, str(at)[:19].replace(" ", "T")) for acc, at in found}


def sent(sb) -> list[str]:
    return [r.arg("q") for r in sb.server.requests if r.arg("q")]


def roles_of(sb, contact: str) -> list[str]:
    return [r["Id"] for r in sb.db[ROLE].values() if r["ContactId"] == contact]


def staying(sb, *, champion: bool) -> list[dict]:
    """Contacts still there with no bounced email: primary roles (champion) or none."""
    primary = {r["ContactId"] for r in sb.db[ROLE].values() if r["IsPrimary"]}
    return [
        c
        for c in sb.db["Contact"].values()
        if not c.get("EmailBouncedDate") and (c["Id"] in primary) == champion
    ]


def bounce(sb, contact: str) -> str:
    """Mail to the contact bounces now; returns the instant (to the second)."""
    at = sf_ts(sb.now)
    sb.modify("Contact", contact, EmailBouncedDate=at, IsEmailBounced=True)
    return at[:19]


@pytest.fixture
def standard():
    with start_salesforce_sandbox(PORTFOLIO, custom_fields=False) as sb:
        yield sb


def test_a_champion_whose_email_bounces_left_and_an_incremental_run_reads_the_changed_roles(
    engine, standard
):
    source = make_source(standard)
    ingest(engine, source)
    before = departures(engine)
    wm = json.loads(rows(engine, "SELECT watermark FROM syncstate")[0][0])
    assert ROLE in wm  # the role position starts with the first sync, which read no role
    assert not any(f" FROM {ROLE} " in q.split("(SELECT")[0] for q in sent(standard))

    champion, other = staying(standard, champion=True)[0], staying(standard, champion=False)[0]
    at = bounce(standard, champion["Id"])
    bounce(standard, other["Id"])  # not a champion: no signal
    standard.server.reset_counts()
    report = ingest(engine, source)

    assert departures(engine) - before == {(champion["AccountId"], at)}
    assert report.stored.errors == 0
    # (described in the first run) one query each for Account, Contract, Opportunity, Case, Task,
    # Event, the champion Contacts (semi-join) and the primary roles changed since their position
    assert standard.server.count("GET", "/describe") == 0 and queries(standard) == 8
    (roles,) = [q for q in sent(standard) if q.startswith("SELECT Id, ContactId, Sys")]
    assert f"FROM {ROLE} WHERE IsPrimary = true AND SystemModstamp >= " in roles
    assert sum(SEMI_JOIN in q for q in sent(standard)) == 1


def test_a_deleted_champion_left_also_when_the_org_deletes_their_roles(engine, standard):
    source = make_source(standard)
    ingest(engine, source)
    before = departures(engine)
    kept, gone = staying(standard, champion=True)[1:3]
    at_kept = standard.delete("Contact", kept["Id"])["SystemModstamp"][:19]
    at_gone = standard.delete("Contact", gone["Id"])["SystemModstamp"][:19]
    for role in roles_of(standard, gone["Id"]):  # an org whose roles go with the contact
        standard.delete(ROLE, role)
    standard.server.reset_counts()
    ingest(engine, source)

    assert departures(engine) - before == {
        (kept["AccountId"], at_kept),  # the semi-join still finds them: their role remains
        (gone["AccountId"], at_gone),  # out of the semi-join: found by its deleted role
    }
    reread = [q for q in sent(standard) if q.startswith("SELECT") and " WHERE Id IN ('" in q]
    assert len(reread) == 1 and gone["Id"] in reread[0] and kept["Id"] not in reread[0]


def test_a_contact_made_primary_after_their_email_bounced_left(engine, standard):
    source = make_source(standard)
    ingest(engine, source)
    before = departures(engine)
    contact = staying(standard, champion=False)[0]
    at = bounce(standard, contact["Id"])
    champion = staying(standard, champion=True)[0]
    standard.modify("Contact", champion["Id"], Title="VP Operations")  # moves the position on
    ingest(engine, source)
    assert departures(engine) == before  # not a champion (yet)

    opp = next(o for o in standard.db["Opportunity"].values()
               if o["AccountId"] == contact["AccountId"])  # fmt: skip
    # a new role changes OpportunityContactRole only, not the Contact's SystemModstamp
    standard.add(ROLE, OpportunityId=opp["Id"], ContactId=contact["Id"], IsPrimary=True)
    ingest(engine, source)
    assert departures(engine) - before == {(contact["AccountId"], at)}


def test_with_champion_fields_the_requests_are_unchanged(engine):
    with start_salesforce_sandbox(PORTFOLIO) as sb:
        source = make_source(sb)
        ingest(engine, source)
        first, first_describes, first_queries = (
            list(sb.server.requests),
            sb.server.count("GET", "/describe"),
            queries(sb),
        )
        champion = staying(sb, champion=True)[0]
        sb.modify("Contact", champion["Id"], Left_Company__c=True, Left_Date__c="2026-11-20")
        sb.server.reset_counts()
        ingest(engine, source)
        again = sb.server.requests
    # first sync: 7 describes and one query each for Account, Opportunity, Case, Task, Event
    # and the Contacts with Champion__c = true; an incremental run adds the Contract query
    assert (first_describes, first_queries) == (7, 6)
    assert sb.server.count("GET", "/describe") == 0 and queries(sb) == 7
    texts = [r.arg("q") or r.path for r in [*first, *again]]
    assert not any(ROLE in t for t in texts)
    assert sum(" FROM Contact WHERE Champion__c = true " in t for t in texts) == 2
    assert (champion["AccountId"], "2026-11-20T00:00:00") in departures(engine)


def test_the_admins_own_mapping_may_name_the_roles_and_must_have_them(engine, tmp_path):
    own = tmp_path / "mapping.yaml"
    text = Path(load_mapping(None).path).read_text()
    own.write_text(
        text.replace("[Champion__c, OpportunityContactRole.IsPrimary]", ROLE + ".IsPrimary")
        .replace("[Left_Company__c, EmailBouncedDate]", "EmailBouncedDate")
        .replace("[Left_Date__c, EmailBouncedDate]", "EmailBouncedDate")
    )
    mapping = load_mapping(own)
    with start_salesforce_sandbox(PORTFOLIO) as sb:  # Champion__c exists, the mapping skips it
        ingest(engine, make_source(sb, mapping=mapping))
        assert sum(SEMI_JOIN in q for q in sent(sb)) == 1
    assert {acc for acc, _ in departures(engine)} == {
        c.account_id for c in PORTFOLIO.contacts if c.is_champion and c.left_on
    }
    with start_salesforce_sandbox(PORTFOLIO, without=[f"{ROLE}.IsPrimary"]) as sb:
        with pytest.raises(PermanentConnectorError) as err:
            list(make_source(sb, mapping=mapping).pull(None))
        assert queries(sb) == 0
    assert f"{ROLE}.IsPrimary (named by contact.champion" in str(err.value)


def test_without_the_roles_the_default_mapping_switches_the_champions_off():
    org = dict(custom_fields=False, without=[f"{ROLE}.IsPrimary"])
    with start_salesforce_sandbox(PORTFOLIO, **org) as sb:  # type: ignore[arg-type]
        source = make_source(sb)
        batches = list(source.pull(None))
        assert not any(" FROM Contact " in q for q in sent(sb))
    off = {s.field: s.turns_off for s in source.switched_off}
    assert off[f"{ROLE}.IsPrimary"] == "the champion_left signal (Contacts are not read)"
    assert not any(o.signal == "champion_left" for b in batches for o in b.observations)


def test_the_fake_answers_semi_joins_and_refuses_malformed_ones(standard):
    sf = _raw(standard)
    got = {r["Id"] for r in sf.query_all_iter(f"SELECT Id FROM Contact WHERE {SEMI_JOIN}")}
    assert got == {r["ContactId"] for r in standard.db[ROLE].values() if r["IsPrimary"]}
    anti = f"SELECT Id FROM Contact WHERE Id NOT IN (SELECT ContactId FROM {ROLE})"
    assert {r["Id"] for r in sf.query_all_iter(anti)} == set(standard.db["Contact"]) - got
    for bad, code in [
        (f"SELECT Id FROM Contact WHERE Email = 'x' OR {SEMI_JOIN}", "MALFORMED_QUERY"),
        (
            f"SELECT Id FROM Contact WHERE Email IN (SELECT ContactId FROM {ROLE})",
            "MALFORMED_QUERY",
        ),
        (
            f"SELECT Id FROM Contact WHERE Id IN (SELECT OpportunityId FROM {ROLE})",
            "MALFORMED_QUERY",
        ),
        (f"SELECT Id FROM Contact WHERE Id IN (SELECT Nope FROM {ROLE})", "INVALID_FIELD"),
    ]:
        with pytest.raises(SalesforceMalformedRequest) as err:
            sf.query(bad)
        assert err.value.content[0]["errorCode"] == code, bad
