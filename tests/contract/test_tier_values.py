"""A CRM whose tier field was set up before the "insufficient" tier existed (a restricted
Salesforce picklist, a HubSpot dropdown without the option): the CRM refuses those scores, the
writeback parks them saying what to do, `healthbot crm setup` adds the value in one call (a
second run costs the read alone), and `healthbot writeback --retry-parked` then writes them.
Real clients over real HTTP against the sandbox fakes; runs on SQLite and PostgreSQL."""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from rich.console import Console
from simple_salesforce.exceptions import SalesforceMalformedRequest
from sqlalchemy import select

from cli.writeback import show_status
from connectors.base import PermanentConnectorError
from connectors.hubspot.sink import HubSpotScoreSink
from connectors.hubspot.source import build_client as hubspot_client
from connectors.registry import build_sink
from connectors.salesforce.client import SalesforceClient
from connectors.salesforce.setup import field_specs, metadata_api
from connectors.salesforce.sink import SalesforceScoreSink, field_names
from connectors.salesforce.source import build_client as salesforce_client
from connectors.sandbox import hubspot_api
from connectors.sandbox.hubspot_api import HubSpotRouter, start_hubspot_sandbox
from connectors.sandbox.portfolio import generate_portfolio
from connectors.sandbox.salesforce_api import TOKEN, start_salesforce_sandbox
from connectors.sandbox.salesforce_metadata import lookup, metadata_calls
from connectors.sandbox.server import SandboxServer
from health.db import session_scope
from health.models import OutboxItem
from health.outbox import RetryPolicy, unpark
from health.records import AccountRecord, AccountRef, Batch, ObservationRecord, ScoreWrite
from health.repo import store_batch
from health.rescore import rescore
from health.scoring.model import load_model
from health.settings import DEFAULT_MODEL_PATH, Settings
from tests.contract.test_crm_setup import NO_CRM, shown
from workers.crm_setup import ManualValues, setup_crm
from workers.doctor import check_score_fields
from workers.writeback import flush_outbox

HELP = "Written by healthbot; ask CS ops before editing"
PORTFOLIO = generate_portfolio(6, 40, seed=5)
MODEL = load_model(DEFAULT_MODEL_PATH)
DAY = date(2026, 11, 1)
OLD_TIERS = ("healthy", "monitor", "at_risk", "critical")  # before "insufficient" existed
PARK_AT_ONCE = RetryPolicy(base_seconds=0, max_permanent=1)
RESTRICTED = "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
SETUP_HINT = "run `healthbot crm setup` to add it, then `healthbot writeback --retry-parked`"


def sf_settings(sb) -> Settings:
    return Settings(
        _env_file=None,
        **{
            **NO_CRM,
            "salesforce_instance_url": sb.url,
            "salesforce_access_token": TOKEN,
            "requests_ca_bundle": sb.ca_path,
        },
    )


def hs_settings(url: str) -> Settings:
    token = {"hubspot_access_token": hubspot_api.TOKEN, "hubspot_base_url": url}
    return Settings(_env_file=None, **{**NO_CRM, **token})


def seed(engine, source: str, fine: str, thin: str) -> None:
    """Two accounts of `source`: `fine` with months of product usage (a tier), `thin` with one
    NPS answer (too little data: "insufficient"); scored, and both queued for writeback."""
    at = datetime.combine(DAY, datetime.min.time(), tzinfo=UTC)
    ref = AccountRef(crm_id=fine)
    obs = [
        ObservationRecord(ref, signal, at - timedelta(days=d), value, "product")
        for d in range(120)
        for signal, value in (
            ("active_users", 60),
            ("seats", 80),
            ("core_features_used", 4),
            ("key_events", 300),
        )
    ]
    obs.append(ObservationRecord(AccountRef(crm_id=thin), "nps", at, 2, "survey"))
    accounts = [AccountRecord(source, ext, f"Account {ext}", arr=50_000.0) for ext in (fine, thin)]
    with session_scope(engine) as s:
        store_batch(
            session=s, source=source, batch=Batch(accounts=accounts, observations=obs), now=at
        )
    rescore(engine, MODEL, day=DAY, targets=(source,))


def outbox(engine) -> list[tuple[str | None, str | None, bool]]:
    """(error code, last error, parked) of every outbox row."""
    with session_scope(engine) as s:
        rows = s.execute(select(OutboxItem.error_code, OutboxItem.last_error, OutboxItem.parked_at))
        return [(code, msg, parked is not None) for code, msg, parked in rows.all()]


def status_text(engine) -> str:
    console = Console(file=io.StringIO(), width=400, soft_wrap=True)  # a line a row
    show_status(engine, console)
    return console.file.getvalue()


def one_line(text: str, *parts: str) -> bool:
    return any(all(p in line for p in parts) for line in text.splitlines())


def retry_parked(engine, sink) -> int:
    with session_scope(engine) as s:
        unpark(session=s, target=sink.name)
    return flush_outbox(engine, sink, policy=PARK_AT_ONCE).acknowledged


# --- Salesforce --------------------------------------------------------------------------


def test_salesforce_tier_value_missing_parks_then_setup_adds_it_and_retry_writes_it(engine):
    fine, thin = (a.external_id for a in PORTFOLIO.accounts[:2])
    kept = (*OLD_TIERS, "churn_risk")  # an admin added a value of their own
    with start_salesforce_sandbox(PORTFOLIO, tier_values=kept) as sb:
        settings = sf_settings(sb)
        seed(engine, "salesforce", fine, thin)
        sink = build_sink(settings, "salesforce")
        first = flush_outbox(engine, sink, policy=PARK_AT_ONCE)
        assert (first.acknowledged, first.parked) == (1, 1)
        [(code, message, parked)] = outbox(engine)
        assert (code, parked) == (RESTRICTED, True)
        assert message.startswith("bad value for restricted picklist field: insufficient")
        assert SETUP_HINT in message
        status = status_text(engine)
        assert f"Account {thin}" in status and SETUP_HINT in status
        assert sb.record("Account", thin).get("Health_Tier__c") is None

        doctor = check_score_fields(settings, "salesforce")
        assert doctor.ok is False
        assert "Health_Tier__c lacks the tier value insufficient" in doctor.detail
        assert doctor.fix == "run `healthbot crm setup`, then `healthbot writeback --retry-parked`"

        tier_field = lookup(sb, "Account.Health_Tier__c")  # an admin wrote help text on it
        sb.field_metadata[tier_field["fullName"]] = {**tier_field, "inlineHelpText": HELP}
        sb.server.reset_counts()
        [setup] = setup_crm(settings)
        assert setup.updated == {"Health_Tier__c": ["insufficient"]}
        assert setup.created == setup.hidden == [] and not setup.needs_admin
        assert "Health_Tier__c" not in setup.present and len(setup.present) == 4
        assert sb.server.count("GET", "/sobjects/Account/describe") == 1
        assert metadata_calls(sb, "readMetadata") == metadata_calls(sb, "updateMetadata") == 1
        assert len(sb.server.requests) == 3  # describe, read the field, update it
        assert lookup(sb, "Account.Health_Tier__c")["inlineHelpText"] == HELP  # sent back
        text, error = shown([setup])
        assert error is None and "✓ Health_Tier__c        updated: added insufficient" in text

        described = {
            f["name"]: f for f in salesforce_client(settings).describe("Account")["fields"]
        }
        tier = described["Health_Tier__c"]
        assert [(p["value"], p["label"]) for p in tier["picklistValues"]] == [
            ("healthy", "Healthy"),
            ("monitor", "Monitor"),
            ("at_risk", "At risk"),
            ("critical", "Critical"),
            ("churn_risk", "churn_risk"),  # the admin's value, kept
            ("insufficient", "Insufficient data"),
        ]
        assert tier["restrictedPicklist"] is True
        assert check_score_fields(settings, "salesforce").ok is True

        sb.server.reset_counts()
        [again] = setup_crm(settings)
        assert (again.updated, again.created, len(again.present)) == ({}, [], 5)
        assert len(sb.server.requests) == 1  # the describe alone

        assert retry_parked(engine, sink) == 1
        assert outbox(engine) == []
        assert sb.record("Account", thin)["Health_Tier__c"] == "insufficient"


def test_salesforce_without_metadata_permission_lists_the_value_to_add_by_hand():
    with start_salesforce_sandbox(tier_values=OLD_TIERS, metadata_access=False) as sb:
        [result] = setup_crm(sf_settings(sb))
        assert result.updated == {} and result.by_hand == [] and result.needs_admin
        steps = (
            'add the value insufficient (label "Insufficient data") in Setup > Object Manager > '
            "Account > Fields & Relationships > Health Tier > Values > New"
        )
        assert result.values_by_hand == [ManualValues("Health_Tier__c", ["insufficient"], steps)]
        assert "INSUFFICIENT_ACCESS" in result.reason
        assert metadata_calls(sb, "readMetadata") == 1  # refused: nothing read, nothing changed
        assert metadata_calls(sb, "updateMetadata") == 0
        text, error = shown([result])
        assert error is not None and "salesforce" in str(error)
        assert one_line(text, "✗ Health_Tier__c ", steps) and "why: INSUFFICIENT_ACCESS" in text


def test_salesforce_bulk_rows_outside_the_picklist_fail_alone_with_the_hint():
    rows = [
        ScoreWrite(a.external_id, 50, tier, None, "", datetime(2026, 11, 2, tzinfo=UTC))
        for a, tier in zip(
            PORTFOLIO.accounts[:3], ("insufficient", "at_risk", "critical"), strict=True
        )
    ]
    with start_salesforce_sandbox(PORTFOLIO, tier_values=OLD_TIERS) as sb:
        client = salesforce_client(sf_settings(sb))
        result = SalesforceScoreSink(client, bulk_threshold=0, bulk_wait=0).write(rows)
        assert sb.server.count("POST", "/jobs/ingest") == 1  # Bulk API 2.0
        assert sorted(result.ok) == sorted(r.account_external_id for r in rows[1:])
        error = result.errors[rows[0].account_external_id]
        assert error.code == RESTRICTED and not error.transient
        assert "insufficient" in error.message and SETUP_HINT in error.message


# --- HubSpot -----------------------------------------------------------------------------


@pytest.fixture
def old_portal():
    """A portal whose health_tier dropdown predates "insufficient" (and has one option of the
    admin's own)."""
    with start_hubspot_sandbox(PORTFOLIO) as sb:
        HubSpotScoreSink(hubspot_client(hs_settings(sb.url))).ensure_properties()
        sb.remove_option("companies", "health_tier", "insufficient")
        tier = sb.store.properties["companies"]["health_tier"]
        tier["options"].append(
            {"label": "Churn risk", "value": "churn_risk", "displayOrder": 9, "hidden": False}
        )
        sb.server.reset_counts()
        yield sb


def test_hubspot_tier_option_missing_parks_then_setup_adds_it_and_retry_writes_it(
    engine, old_portal
):
    sb = old_portal
    fine, thin = list(sb.company_ids.values())[:2]
    settings = hs_settings(sb.url)
    seed(engine, "hubspot", fine, thin)
    sink = build_sink(settings, "hubspot")
    first = flush_outbox(engine, sink, policy=PARK_AT_ONCE)
    assert (first.acknowledged, first.parked) == (1, 1)
    [(code, message, parked)] = outbox(engine)
    assert (code, parked) == ("VALIDATION_ERROR", True)
    assert message.startswith("Property values were not valid: ")
    assert '"error": "INVALID_OPTION"' in message and '"name": "health_tier"' in message
    assert "insufficient was not one of the allowed options" in message
    assert SETUP_HINT in message and SETUP_HINT in status_text(engine)

    doctor = check_score_fields(settings, "hubspot")
    assert doctor.ok is False and "health_tier lacks the tier value insufficient" in doctor.detail

    sb.server.reset_counts()
    [setup] = setup_crm(settings)
    assert setup.updated == {"health_tier": ["insufficient"]} and setup.created == []
    assert len(setup.present) == 4 and not setup.needs_admin
    assert sb.server.count("GET", "/crm/v3/properties/companies") == 1
    assert sb.server.count("PATCH", "/crm/v3/properties/companies/health_tier") == 1
    assert len(sb.server.requests) == 2
    options = sb.store.properties["companies"]["health_tier"]["options"]
    assert [(o["value"], o["displayOrder"]) for o in options] == [
        ("healthy", 0),
        ("monitor", 1),
        ("at_risk", 2),
        ("critical", 3),
        ("churn_risk", 9),  # the admin's option, kept
        ("insufficient", 10),
    ]
    assert check_score_fields(settings, "hubspot").ok is True

    sb.server.reset_counts()
    [again] = setup_crm(settings)
    assert (again.updated, len(again.present)) == ({}, 5) and len(sb.server.requests) == 1

    assert retry_parked(engine, sink) == 1
    assert outbox(engine) == []
    props = sb.store.objects["companies"][thin]["properties"]
    assert props["health_tier"] == "insufficient"


def test_hubspot_batch_refused_whole_parks_the_rows_with_the_value_it_names(old_portal):
    """HubSpot may refuse a batch with an invalid option whole (a 400 naming no company): the
    sink parks the rows carrying that value, with HubSpot's message and the hint, and writes
    the rest in one more request."""
    old_portal.router.refuse_whole_batch = True
    sink = HubSpotScoreSink(hubspot_client(hs_settings(old_portal.url)))
    ids = sorted(old_portal.company_ids.values())[:6]
    bad = ids[4]
    at = datetime.combine(DAY, datetime.min.time(), tzinfo=UTC)
    rows = [ScoreWrite(c, 70, "insufficient" if c == bad else "healthy", None, "why", at)
            for c in ids]  # fmt: skip
    result = sink.write(rows)
    assert sorted(result.ok) == sorted(set(ids) - {bad}) and set(result.errors) == {bad}
    why = result.errors[bad]
    assert why.code == "VALIDATION_ERROR" and not why.transient
    assert "INVALID_OPTION" in why.message and SETUP_HINT in why.message
    assert {c: old_portal.applied[c] for c in ids} == {c: int(c != bad) for c in ids}
    sent = old_portal.server.count("POST", "/crm/v3/objects/companies/batch/update")
    assert sent == 2  # the refused batch, then the rest: the message names the bad value


def test_hubspot_without_the_schema_scope_lists_the_option_to_add_by_hand(old_portal):
    router: HubSpotRouter = old_portal.router

    def no_schema_writes(req):
        if req.path.startswith("/crm/v3/properties/") and req.method in ("POST", "PATCH"):
            return hubspot_api.error(
                403,
                "This app hasn't been granted all required scopes to make this call.",
                "MISSING_SCOPES",
            )
        return router(req)

    server = SandboxServer(no_schema_writes, hubspot_api.fault_response).start()
    try:
        [result] = setup_crm(hs_settings(server.url))
    finally:
        server.stop()
    steps = (
        'add the option "Insufficient data" (internal value insufficient) in Settings > '
        "Properties > Company properties > Health Tier > Field type"
    )
    assert result.values_by_hand == [ManualValues("health_tier", ["insufficient"], steps)]
    assert result.by_hand == [] and len(result.present) == 4 and result.needs_admin
    assert "crm.schemas.companies.write" in result.reason
    assert server.count("PATCH", "/health_tier") == 1
    assert "insufficient" not in {
        o["value"] for o in old_portal.store.properties["companies"]["health_tier"]["options"]
    }
    text, error = shown([result])
    assert one_line(text, "✗ health_tier ", steps) and error is not None


# --- the fakes, as the vendors answer ----------------------------------------------------


def test_salesforce_fake_update_metadata_replaces_the_value_set_and_writes_follow_it():
    with start_salesforce_sandbox(PORTFOLIO) as sb:
        client = SalesforceClient(sb.url, TOKEN, ca_bundle=sb.ca_path)
        md, _ = metadata_api(client)
        tier = field_specs(field_names())[1]
        md.CustomField.update([tier.component(md, values=[("healthy", "Healthy")])])
        values = md.CustomField.read(["Account.Health_Tier__c"]).valueSet.valueSetDefinition.value
        assert [v.fullName for v in values] == ["healthy"]
        account = PORTFOLIO.accounts[0].external_id
        with pytest.raises(SalesforceMalformedRequest) as refused:  # a single-record PATCH
            client.sf.Account.update(account, {"Health_Tier__c": "monitor"})
        assert refused.value.content == [
            {
                "message": "bad value for restricted picklist field: monitor",
                "errorCode": RESTRICTED,
                "fields": ["Health_Tier__c"],
            }
        ]
        client.sf.Account.update(account, {"Health_Tier__c": None})  # null clears it
        with pytest.raises(Exception, match=r"\(INVALID_CROSS_REFERENCE_KEY, no CustomField"):
            md.CustomField.update([replace(tier, name="Nope__c").component(md)])
        with pytest.raises(Exception, match=r"\(FIELD_INTEGRITY_EXCEPTION, .*type"):
            md.CustomField.update([replace(tier, type="Text", length=20).component(md)])


def test_hubspot_fake_property_patch_validates_as_hubspot_does(old_portal):
    client = hubspot_client(hs_settings(old_portal.url))
    with pytest.raises(PermanentConnectorError, match="HubSpot 404 OBJECT_NOT_FOUND"):
        client.update_property("companies", "nope", {"label": "Nope"})
    option = {"label": "A", "value": "a", "hidden": False}
    with pytest.raises(PermanentConnectorError, match="HubSpot 400 VALIDATION_ERROR"):
        client.update_property("companies", "health_score", {"options": [option]})
    with pytest.raises(PermanentConnectorError, match="unique"):
        client.update_property("companies", "health_tier", {"options": [option, option]})
    changed = client.update_property("companies", "health_tier", {"label": "Tier"})
    assert changed["label"] == "Tier" and len(changed["options"]) == 5  # options untouched
