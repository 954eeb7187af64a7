"""The Salesforce fake's SOQL parser: semi-join and anti-join sub-selects, and Salesforce's
rules for them (pure: parsing only; evaluation is covered by the contract tests)."""

from __future__ import annotations

import pytest

from connectors.sandbox.salesforce_soql import SoqlError, parse

SEMI = "Id IN (SELECT ContactId FROM OpportunityContactRole WHERE IsPrimary = true)"


def test_a_semi_join_parses_to_its_sub_select():
    q = parse(f"SELECT Id FROM Contact WHERE {SEMI} AND SystemModstamp >= 2026-01-01T00:00:00Z")
    kind, semi, stamp = q.where
    assert kind == "and" and stamp[:3] == ("cmp", "SystemModstamp", ">=")
    assert semi[0] == "semi" and semi[1] == "Id" and semi[3] is False
    sub = semi[2]
    assert (sub.obj, [f.name for f in sub.fields]) == ("OpportunityContactRole", ["ContactId"])
    assert sub.where == ("cmp", "IsPrimary", "=", True)


def test_an_anti_join_and_two_joins_parse():
    q = parse(
        "SELECT Id FROM Account WHERE Id NOT IN (SELECT AccountId FROM Opportunity "
        "WHERE IsClosed = false) AND Id IN (SELECT AccountId FROM Contact)"
    )
    (_, anti, semi) = q.where
    assert (anti[0], anti[3], semi[0], semi[3]) == ("semi", True, "semi", False)
    assert semi[2].where is None


@pytest.mark.parametrize(
    ("where", "code", "says"),
    [
        (f"Email = 'a@b.c' OR {SEMI}", "MALFORMED_QUERY", "'OR' operator"),
        (f"Email = 'a@b.c' AND (LastName = 'x' OR {SEMI})", "MALFORMED_QUERY", "'OR' operator"),
        (f"NOT {SEMI}", "MALFORMED_QUERY", "top level WHERE"),
        (f"{SEMI} AND {SEMI} AND {SEMI}", "EXCEEDED_MAX_SEMIJOIN_SUBSELECTS", "Maximum of 2"),
        (
            "Id IN (SELECT ContactId FROM OpportunityContactRole WHERE OpportunityId IN "
            "(SELECT Id FROM Opportunity))",
            "MALFORMED_QUERY",
            "Nesting",
        ),
        (
            "Id IN (SELECT ContactId, OpportunityId FROM OpportunityContactRole)",
            "MALFORMED_QUERY",
            "one id field",
        ),
        ("Id IN (SELECT COUNT(Id) FROM OpportunityContactRole)", "MALFORMED_QUERY", "one id"),
        ("Id IN (SELECT Id FROM Contact)", "MALFORMED_QUERY", "same object type"),
        (
            "Id IN (SELECT ContactId FROM OpportunityContactRole ORDER BY ContactId)",
            "MALFORMED_QUERY",
            "not emulated",
        ),
        ("Id IN (SELECT ContactId FROM OpportunityContactRole", "MALFORMED_QUERY", "expecting"),
        ("Id IN (SELECT FROM OpportunityContactRole)", "MALFORMED_QUERY", "expecting"),
    ],
)
def test_malformed_semi_joins_are_refused_like_salesforce(where, code, says):
    with pytest.raises(SoqlError) as err:
        parse(f"SELECT Id FROM Contact WHERE {where}")
    assert err.value.code == code and says in str(err.value)


def test_a_literal_in_list_is_still_a_plain_in():
    q = parse("SELECT Id FROM Contact WHERE Id IN ('003A', '003B')")
    assert q.where == ("in", "Id", ["003A", "003B"], False)
