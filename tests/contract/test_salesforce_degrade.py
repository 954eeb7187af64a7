"""An org with Salesforce's standard fields only, and one org per missing custom field: the
sync reads everything it can, each missing field switches off only what depends on it and is
reported once; a missing essential field, or one the admin's own mapping names, still fails."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from rich.console import Console

from cli.sync import explain_problems
from connectors.base import PermanentConnectorError
from connectors.salesforce.source import load_mapping
from connectors.sandbox.portfolio import generate_portfolio, outcome_records
from connectors.sandbox.salesforce_api import TOKEN, start_salesforce_sandbox
from health.ingest import ingest
from health.rescore import rescore
from health.scoring.model import load_model
from health.settings import DEFAULT_MODEL_PATH
from tests.contract.test_salesforce import PORTFOLIO, make_source, queries, rows, signals

SMALL = generate_portfolio(16, 150, seed=5)
ALL_SIGNALS = {"sev1_ticket", "escalation", "csat", "csm_touch", "exec_meeting", "open_tickets",
               "champion_left"}  # fmt: skip


def test_standard_fields_only_reads_every_object_and_reports_what_is_off(engine):
    with start_salesforce_sandbox(PORTFOLIO, custom_fields=False) as sb:
        first = sorted(sb.db["Account"])[0]
        sb.db["Account"][first]["AnnualRevenue"] = 1_250_000.0  # the standard ARR fallback
        source = make_source(sb)
        report = ingest(engine, source)
        # 8 describes (OpportunityContactRole too: the champions' fallback) and 6 single-page
        # streams (Account with its Contracts, Opportunity, Case, Task, Event, champion Contacts)
        assert sb.server.count("GET", "/describe") == 8 and queries(sb) == 6
        assert sb.server.count("GET", "/sobjects/OpportunityContactRole/describe") == 1
        assert report.api_calls == len(sb.server.requests) == 14
        sent = [r.arg("q") or "" for r in sb.server.requests]
        assert not any("__c" in q for q in sent)
        (contacts,) = [q for q in sent if " FROM Contact " in q]
        semi_join = "Id IN (SELECT ContactId FROM OpportunityContactRole WHERE IsPrimary = true)"
        assert f" FROM Contact WHERE {semi_join} ORDER BY" in contacts

    assert {s.field: s.key for s in report.switched_off} == {
        "Account.ARR__c": "account.arr",
        "Account.Segment__c": "account.segment",
        "Opportunity.Prior_ARR__c": "opportunity.prior_amount",
        "Case.CSAT__c": "case.satisfaction",
        "Task.Executive_Meeting__c": "activity.executive",
        "Event.Executive_Meeting__c": "activity.executive",
        "Contact.Champion__c": "contact.champion",
        "Contact.Left_Company__c": "contact.left",
        "Contact.Left_Date__c": "contact.left_date",
    }
    off = {s.field: s for s in report.switched_off}
    assert "csat signal" in off["Case.CSAT__c"].turns_off
    assert "OpportunityContactRole.IsPrimary" in off["Contact.Champion__c"].turns_off
    assert "EmailBouncedDate" in off["Contact.Left_Company__c"].turns_off
    assert "EmailBouncedDate is used" in off["Contact.Left_Date__c"].turns_off
    assert "AnnualRevenue" in off["Account.ARR__c"].turns_off
    assert "SALESFORCE_MAPPING" in off["Case.CSAT__c"].fix
    assert [s["field"] for s in report.as_dict()["switched_off"]] == list(off)
    shown = Console(record=True, width=200)
    explain_problems([report], shown)
    text = shown.export_text()
    assert "salesforce reads without 9 fields it lacks:" in text
    assert "Case.CSAT__c → off: the csat signal. Fix: create it in Salesforce, or point " in text

    accounts = rows(engine, "SELECT external_id, segment, arr FROM account")
    assert len(accounts) == len(PORTFOLIO.accounts)
    want = {a.external_id: a.segment for a in PORTFOLIO.accounts}
    assert {ext: seg for ext, seg, _ in accounts} == want  # from the employee bands
    assert {ext: arr for ext, _, arr in accounts if arr is not None} == {first: 1_250_000.0}
    sig = signals(engine)
    assert {s for s in sig if sig[s]} == ALL_SIGNALS - {"csat", "exec_meeting"}
    left = rows(
        engine,
        "SELECT a.external_id, o.observed_at FROM observation o JOIN account a "
        "ON a.id = o.account_id WHERE o.signal = 'champion_left'",
    )  # every champion who left, on the day their email started to bounce
    assert sorted((acc, str(at)[:10]) for acc, at in left) == sorted(
        (c.account_id, c.left_on.isoformat()) for c in PORTFOLIO.contacts
        if c.is_champion and c.left_on
    )  # fmt: skip
    assert sig["csm_touch"] == len({(v.account_id, v.occurred_at) for v in PORTFOLIO.touches})
    assert sig["escalation"] == len({(t.account_id, t.created_at) for t in PORTFOLIO.tickets
                                     if t.escalated})  # fmt: skip
    kinds = Counter(k for (k,) in rows(engine, "SELECT kind FROM outcome"))
    portfolio_kinds = Counter(o.kind for o in outcome_records(PORTFOLIO))
    assert kinds["churned"] == portfolio_kinds["churned"]  # no prior ARR: expanded -> renewed
    assert kinds["renewed"] == portfolio_kinds["renewed"] + portfolio_kinds["expanded"]
    assert report.stored.errors == 0

    scored = rescore(engine, load_model(DEFAULT_MODEL_PATH), day=PORTFOLIO.end)
    churned = {
        e.external_id for e in PORTFOLIO.accounts if e.churned_on and e.churned_on < PORTFOLIO.end
    }
    assert scored.scored == len(PORTFOLIO.accounts) - len(churned) > 0


OFF = {  # missing field -> (mapping key, signal it switches off, or None: a value, not a signal)
    "Account.Segment__c": ("account.segment", None),
    "Account.ARR__c": ("account.arr", None),
    "Opportunity.Prior_ARR__c": ("opportunity.prior_amount", None),
    "Case.CSAT__c": ("case.satisfaction", "csat"),
    "Task.Executive_Meeting__c": ("activity.executive", "exec_meeting"),
    "Event.Executive_Meeting__c": ("activity.executive", "exec_meeting"),
    "Contact.Champion__c": ("contact.champion", None),  # primary contact roles instead
    "Contact.Left_Company__c": ("contact.left", None),  # EmailBouncedDate instead
    "Contact.Left_Date__c": ("contact.left_date", None),
}


@pytest.fixture(scope="module")
def complete() -> dict:
    """What a sync of SMALL reads from an org with every custom field (no database needed:
    the batches themselves)."""
    with start_salesforce_sandbox(SMALL) as sb:
        return _pulled(make_source(sb))


def _pulled(source) -> dict:
    out = {"accounts": {}, "signals": Counter(), "outcomes": Counter()}
    for batch in source.pull(None):
        out["accounts"].update({a.external_id: a for a in batch.accounts})
        out["signals"].update(o.signal for o in batch.observations)
        out["outcomes"].update((o.kind, o.arr_change is not None) for o in batch.outcomes)
    return out


@pytest.mark.parametrize("missing", list(OFF))
def test_one_missing_custom_field_switches_off_only_what_needs_it(missing, complete):
    key, signal = OFF[missing]
    with start_salesforce_sandbox(SMALL, without=[missing]) as sb:
        source = make_source(sb)
        got = _pulled(source)
    assert [(s.field, s.key) for s in source.switched_off] == [(missing, key)]
    want = complete["signals"]
    if signal is not None:
        assert want[signal] > 0 and got["signals"][signal] == 0
    assert {s: n for s, n in got["signals"].items() if s != signal} == {
        s: n for s, n in want.items() if s != signal
    }
    assert set(got["accounts"]) == set(complete["accounts"])
    field_of = {"Account.Segment__c": "segment", "Account.ARR__c": "arr"}
    for name in ("name", "domain", "owner", "segment", "arr", "renewal_date"):
        same = [got["accounts"][k].__getattribute__(name) == a.__getattribute__(name)
                for k, a in complete["accounts"].items()]  # fmt: skip
        if field_of.get(missing) == "arr" and name == "arr":
            assert not any(same)  # the fallback AnnualRevenue is empty in this org
        else:  # Segment__c's values come back from the employee bands
            assert all(same), name
    if missing == "Opportunity.Prior_ARR__c":
        assert got["outcomes"][("expanded", True)] == 0 < complete["outcomes"][("expanded", True)]
    else:
        assert got["outcomes"] == complete["outcomes"]


def test_a_missing_field_the_admins_own_mapping_names_fails_naming_it(tmp_path):
    own = tmp_path / "mapping.yaml"
    own.write_text(Path(load_mapping(None).path).read_text())  # a copy names every field
    with start_salesforce_sandbox(SMALL, without=["Case.CSAT__c"]) as sb:
        source = make_source(sb, mapping=load_mapping(own))
        with pytest.raises(PermanentConnectorError) as err:
            list(source.pull(None))
        assert queries(sb) == 0
    assert "Case.CSAT__c (named by case.satisfaction" in str(err.value) and str(own) in str(
        err.value
    )


def test_a_missing_essential_standard_field_fails_even_with_the_default_mapping():
    with start_salesforce_sandbox(SMALL, without=["Account.Name", "Case.IsClosed"]) as sb:
        with pytest.raises(PermanentConnectorError) as err:
            list(make_source(sb).pull(None))
        assert queries(sb) == 0
    assert "Account.Name (a standard field" in str(err.value)
    assert "Case.IsClosed (a standard field" in str(err.value)


def test_with_every_custom_field_nothing_is_switched_off(complete):
    with start_salesforce_sandbox(SMALL) as sb:
        source = make_source(sb)
        source.validate()
    assert source.switched_off == []
    assert complete["signals"].keys() == ALL_SIGNALS


def test_doctor_lists_what_is_switched_off_and_fails_on_the_admins_own_mapping(tmp_path):
    from health.settings import Settings
    from workers.doctor import check_source

    own = tmp_path / "mapping.yaml"
    own.write_text(Path(load_mapping(None).path).read_text())
    with start_salesforce_sandbox(SMALL, without=["Case.CSAT__c"]) as sb:
        settings = Settings(
            _env_file=None,
            salesforce_instance_url=sb.url,
            salesforce_access_token=TOKEN,
            requests_ca_bundle=sb.ca_path,
        )
        degraded = check_source(settings, "salesforce")
        refused = check_source(
            settings.model_copy(update={"salesforce_mapping": own}), "salesforce"
        )
    assert degraded.ok is True
    assert (
        "1 field missing, read without" in degraded.detail
        and "Case.CSAT__c missing" in degraded.detail
    )
    assert "case.satisfaction" in degraded.detail and "csat signal" in degraded.detail
    assert refused.ok is False and "Case.CSAT__c (named by case.satisfaction" in refused.detail
