"""Contract tests of `healthbot crm setup`: the real simple-salesforce (REST describe, Metadata
API through zeep) and hubspot-api-client over real HTTP against the sandbox fakes."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest
from rich.console import Console
from zeep.exceptions import Fault

from cli.crm import show_setup
from cli.errors import UserError
from connectors.base import AuthConnectorError
from connectors.salesforce.client import SalesforceClient
from connectors.salesforce.setup import FLS_STEP, field_specs, metadata_api, read
from connectors.salesforce.sink import build_sink, field_names
from connectors.salesforce.source import build_client
from connectors.sandbox import hubspot_api
from connectors.sandbox.hubspot_api import HubSpotRouter, start_hubspot_sandbox
from connectors.sandbox.hubspot_store import HubSpotStore
from connectors.sandbox.portfolio import generate_portfolio
from connectors.sandbox.salesforce_api import TOKEN, start_salesforce_sandbox
from connectors.sandbox.salesforce_metadata import hide_field, metadata_calls
from connectors.sandbox.server import SandboxServer
from health.records import ScoreWrite
from health.settings import Settings
from workers.crm_setup import ManualField, setup_crm

PORTFOLIO = generate_portfolio(6, 40, seed=5)
ACCOUNT = PORTFOLIO.accounts[0].external_id
AT = datetime(2026, 11, 2, 6, 0, tzinfo=UTC)
SF_FIELDS = [
    "Health_Score__c",
    "Health_Tier__c",
    "Health_Trend_30d__c",
    "Health_Drivers__c",
    "Health_Updated_At__c",
]
HS_PROPERTIES = [
    "health_score",
    "health_tier",
    "health_trend_30d",
    "health_drivers",
    "health_updated_at",
]
SF_BY_HAND = [
    ManualField("Health_Score__c", "Health Score", "Number", "Length 5, Decimal Places 0"),
    ManualField(
        "Health_Tier__c",
        "Health Tier",
        "Picklist",
        "values healthy, monitor, at_risk, critical, insufficient (restricted)",
    ),
    ManualField(
        "Health_Trend_30d__c", "Health 30-day Trend", "Number", "Length 4, Decimal Places 1"
    ),
    ManualField("Health_Drivers__c", "Health Drivers", "Text Area", "255 characters"),
    ManualField("Health_Updated_At__c", "Health Updated At", "Date/Time", ""),
]
NO_CRM = {
    "salesforce_instance_url": None,
    "salesforce_access_token": None,
    "salesforce_username": None,
    "salesforce_password": None,
    "hubspot_access_token": None,
}


def sf_settings(sb, **extra) -> Settings:
    return Settings(
        _env_file=None,
        **{
            **NO_CRM,
            "salesforce_instance_url": sb.url,
            "salesforce_access_token": TOKEN,
            "requests_ca_bundle": sb.ca_path,
            **extra,
        },
    )


def hs_settings(sb, **extra) -> Settings:
    return Settings(
        _env_file=None,
        **{**NO_CRM, "hubspot_access_token": sb.token, "hubspot_base_url": sb.url, **extra},
    )


def row(tier: str = "at_risk") -> ScoreWrite:
    return ScoreWrite(ACCOUNT, 52, tier, -14.0, "the champion left", AT)


def shown(results) -> tuple[str, UserError | None]:
    console = Console(file=io.StringIO(), width=400)
    try:
        show_setup(results, console)
    except UserError as exc:
        return console.file.getvalue(), exc
    return console.file.getvalue(), None


# --- Salesforce --------------------------------------------------------------------------


def test_salesforce_fields_created_on_an_org_without_them_then_left_alone():
    with start_salesforce_sandbox(PORTFOLIO, score_fields=False) as sb:
        settings = sf_settings(sb)
        before = build_sink(settings).write([row()])
        assert before.ok == [] and before.errors[ACCOUNT].code == "INVALID_FIELD"
        sb.server.reset_counts()

        [first] = setup_crm(settings)
        assert (first.crm, first.created, first.present) == ("salesforce", SF_FIELDS, [])
        assert first.by_hand == first.hidden == [] and first.error == ""
        assert first.notes == [FLS_STEP] and not first.needs_admin
        # 1 describe, 1 readMetadata (hidden by field-level security?), 1 createMetadata
        assert sb.server.count("GET", "/sobjects/Account/describe") == 1
        assert metadata_calls(sb, "readMetadata") == 1
        assert metadata_calls(sb, "createMetadata") == 1
        assert len(sb.server.requests) == 3

        described = {f["name"]: f for f in build_client(settings).describe("Account")["fields"]}
        assert [described[n]["type"] for n in SF_FIELDS] == [
            "double",
            "picklist",
            "double",
            "textarea",
            "datetime",
        ]
        assert all(described[n]["custom"] and described[n]["updateable"] for n in SF_FIELDS)
        assert build_sink(settings).write([row()]).ok == [ACCOUNT]
        assert sb.record("Account", ACCOUNT)["Health_Tier__c"] == "at_risk"
        assert sb.record("Account", ACCOUNT)["Health_Trend_30d__c"] == -14.0

        sb.server.reset_counts()
        [second] = setup_crm(settings)
        assert (second.created, second.present, second.notes) == ([], SF_FIELDS, [])
        assert len(sb.server.requests) == 1  # the describe alone
        assert metadata_calls(sb, "createMetadata") == metadata_calls(sb, "readMetadata") == 0


def test_salesforce_created_fields_read_back_through_the_metadata_api():
    with start_salesforce_sandbox(score_fields=False) as sb:
        setup_crm(sf_settings(sb))
        md, _ = metadata_api(SalesforceClient(sb.url, TOKEN, ca_bundle=sb.ca_path))
        score, tier, missing = md.CustomField.read(
            ["Account.Health_Score__c", "Account.Health_Tier__c", "Account.Nope__c"]
        )
        assert (score.type, score.precision, score.scale, score.label) == (
            "Number",
            5,
            0,
            "Health Score",
        )
        values = tier.valueSet.valueSetDefinition.value
        assert [(v.fullName, v.label) for v in values] == [
            ("healthy", "Healthy"),
            ("monitor", "Monitor"),
            ("at_risk", "At risk"),
            ("critical", "Critical"),
            ("insufficient", "Insufficient data"),  # too little data for a tier
        ]
        assert tier.valueSet.restricted is True
        assert missing.fullName is None  # Salesforce answers a missing name with an empty record
        with pytest.raises(Exception, match=r"\(DUPLICATE_DEVELOPER_NAME, There is already"):
            md.CustomField.create([field_specs(field_names())[0].component(md)])


def test_salesforce_renamed_fields_are_created_under_their_names():
    renames = {"score": "CS_Health_Score__c", "tier": "CS_Health_Tier__c"}
    with start_salesforce_sandbox(PORTFOLIO) as sb:  # an org with the default fields
        settings = sf_settings(sb, salesforce_score_fields=renames)
        [result] = setup_crm(settings)
        assert result.created == ["CS_Health_Score__c", "CS_Health_Tier__c"]
        assert result.present == [
            "Health_Trend_30d__c",
            "Health_Drivers__c",
            "Health_Updated_At__c",
        ]
        assert build_sink(settings).write([row("critical")]).ok == [ACCOUNT]
        record = sb.record("Account", ACCOUNT)
        assert (record["CS_Health_Score__c"], record["CS_Health_Tier__c"]) == (52, "critical")
        assert record.get("Health_Tier__c") is None

        sb.server.reset_counts()
        [again] = setup_crm(settings)
        assert again.created == [] and metadata_calls(sb, "createMetadata") == 0
        with start_salesforce_sandbox(PORTFOLIO) as other:  # another org never sees them
            assert "CS_Health_Score__c" not in {
                f["name"] for f in build_client(sf_settings(other)).describe("Account")["fields"]
            }


def test_salesforce_unknown_rename_key_is_an_error_line():
    with start_salesforce_sandbox() as sb:
        [result] = setup_crm(sf_settings(sb, salesforce_score_fields={"colour": "Colour__c"}))
        assert "SALESFORCE_SCORE_FIELDS" in result.error and result.needs_admin
        assert len(sb.server.requests) == 0


def test_salesforce_without_metadata_permission_lists_fields_to_create_by_hand():
    with start_salesforce_sandbox(PORTFOLIO, score_fields=False, metadata_access=False) as sb:
        [result] = setup_crm(sf_settings(sb))
        assert result.created == result.present == result.hidden == []
        assert result.by_hand == SF_BY_HAND
        assert "INSUFFICIENT_ACCESS" in result.reason
        assert "Modify Metadata Through Metadata API Functions" in result.reason
        assert metadata_calls(sb, "readMetadata") == 1  # refused: no create is attempted
        assert metadata_calls(sb, "createMetadata") == 0
        assert not {"Health_Score__c"} & {f for f in sb.schema["Account"]}

        text, error = shown([result])
        assert error is not None and "salesforce" in str(error)
        assert (
            "✗ Health_Score__c       create by hand: Number, Length 5, Decimal Places 0, "
            'label "Health Score"'
        ) in text
        assert 'Health_Updated_At__c  create by hand: Date/Time, label "Health Updated At"' in text
        assert "why: INSUFFICIENT_ACCESS" in text


def test_salesforce_without_permission_lists_only_the_missing_fields():
    with start_salesforce_sandbox(metadata_access=False) as sb:
        settings = sf_settings(sb, salesforce_score_fields={"drivers": "CS_Drivers__c"})
        [result] = setup_crm(settings)
        assert result.present == [n for n in SF_FIELDS if n != "Health_Drivers__c"]
        assert result.by_hand == [
            ManualField("CS_Drivers__c", "Health Drivers", "Text Area", "255 characters")
        ]


def test_salesforce_field_hidden_by_field_level_security_is_not_created_again():
    with start_salesforce_sandbox(PORTFOLIO) as sb:
        hide_field(sb, "Account", "Health_Tier__c")
        [result] = setup_crm(sf_settings(sb))
        assert result.hidden == ["Health_Tier__c"] and result.created == []
        assert result.present == [n for n in SF_FIELDS if n != "Health_Tier__c"]
        assert result.notes == [FLS_STEP] and result.needs_admin
        assert metadata_calls(sb, "createMetadata") == 0
        text, error = shown([result])
        assert "✗ Health_Tier__c        exists, but the API user cannot see it" in text
        assert "Set Field-Level Security" in text and error is not None


def test_metadata_fake_faults_as_salesforce_does():
    with start_salesforce_sandbox(metadata_access=False) as sb:
        md, session = metadata_api(SalesforceClient(sb.url, TOKEN, ca_bundle=sb.ca_path))
        with pytest.raises(Fault) as fault:
            md.CustomField.read(["Account.Health_Score__c"])
        assert fault.value.code == "sf:INSUFFICIENT_ACCESS"
        assert fault.value.message.startswith("INSUFFICIENT_ACCESS: use of the Metadata API")
        assert session.calls == 1  # a fault (HTTP 500) is not retried
        stale = SalesforceClient(sb.url, "expired", ca_bundle=sb.ca_path)
        with pytest.raises(AuthConnectorError, match="SALESFORCE_ACCESS_TOKEN"):
            read(metadata_api(stale)[0], [s.full_name for s in field_specs(field_names())])


# --- HubSpot -----------------------------------------------------------------------------


def test_hubspot_group_and_properties_created_once():
    with start_hubspot_sandbox() as sb:
        settings = hs_settings(sb)
        [first] = setup_crm(settings)
        assert (first.crm, first.created, first.present) == ("hubspot", HS_PROPERTIES, [])
        assert not first.needs_admin and first.notes == []
        defined = sb.store.properties["companies"]
        assert {defined[n]["groupName"] for n in HS_PROPERTIES} == {"customer_health"}
        assert defined["health_tier"]["type"] == "enumeration"
        assert sb.server.count("GET", "/crm/v3/properties/companies") == 1
        assert sb.server.count("POST", "/crm/v3/properties/companies/groups") == 1
        assert sb.server.count("POST", "/crm/v3/properties/companies/batch/create") == 1

        sb.server.reset_counts()
        [second] = setup_crm(settings)
        assert (second.created, second.present) == ([], HS_PROPERTIES)
        assert sb.server.count("GET") == 1 and sb.server.count("POST") == 0


def test_hubspot_renamed_property():
    with start_hubspot_sandbox() as sb:
        settings = hs_settings(sb, hubspot_score_properties={"score": "cs_health_score"})
        [result] = setup_crm(settings)
        assert result.created[0] == "cs_health_score"
        assert "cs_health_score" in sb.store.properties["companies"]
        assert "health_score" not in sb.store.properties["companies"]


def missing_write_scope(router: HubSpotRouter):
    """A portal whose private app may read company properties but not create them."""

    def route(req):
        if req.path.startswith("/crm/v3/properties/") and req.method == "POST":
            return hubspot_api.error(
                403,
                "This app hasn't been granted all required scopes to make this call. Read more "
                "about required scopes here: https://developers.hubspot.com/scopes.",
                "MISSING_SCOPES",
                errors=[
                    {
                        "message": "One or more of the following scopes are required.",
                        "context": {"requiredGranularScopes": ["crm.schemas.companies.write"]},
                    }
                ],
                links={"scopes": "https://developers.hubspot.com/scopes"},
            )
        return router(req)

    return route


def test_hubspot_missing_scope_lists_properties_to_create_by_hand():
    store = HubSpotStore()
    store.define("companies", "health_score", "Health Score", "number", "number")
    router = HubSpotRouter(store)
    server = SandboxServer(missing_write_scope(router), hubspot_api.fault_response).start()
    try:
        settings = Settings(
            _env_file=None,
            **{**NO_CRM, "hubspot_access_token": hubspot_api.TOKEN, "hubspot_base_url": server.url},
        )
        [result] = setup_crm(settings)
    finally:
        server.stop()
    assert result.created == [] and result.present == ["health_score"]
    assert result.by_hand == [
        ManualField(
            "health_tier",
            "Health Tier",
            "Dropdown select",
            "options healthy, monitor, at_risk, critical, insufficient",
        ),
        ManualField("health_trend_30d", "Health 30-day trend", "Number", ""),
        ManualField("health_drivers", "Health drivers", "Multi-line text", ""),
        ManualField("health_updated_at", "Health updated at", "Date and time picker", ""),
    ]
    assert "403" in result.reason and "crm.schemas.companies.write" in result.reason
    assert '"Customer health"' in result.reason
    assert set(store.properties["companies"]) == {"health_score"}
    assert server.count("POST", "/groups") == 1 and server.count("POST", "/batch/create") == 0


# --- both, and neither -------------------------------------------------------------------


def test_every_configured_crm_one_failing_does_not_stop_the_other():
    with start_salesforce_sandbox() as sf, start_hubspot_sandbox() as hs:
        settings = Settings(
            _env_file=None,
            salesforce_instance_url=sf.url,
            salesforce_access_token="expired",
            requests_ca_bundle=sf.ca_path,
            hubspot_access_token=hs.token,
            hubspot_base_url=hs.url,
        )
        salesforce, hubspot = setup_crm(settings)
    assert salesforce.crm == "salesforce" and "SALESFORCE_ACCESS_TOKEN" in salesforce.error
    assert hubspot.created == HS_PROPERTIES
    text, error = shown([salesforce, hubspot])
    assert str(error) == "the score fields are not ready on salesforce: see above"
    assert "✓ health_score       created" in text


def test_nothing_configured():
    assert setup_crm(Settings(_env_file=None, **NO_CRM)) == []
    _, error = shown([])
    assert error is not None
    assert "SALESFORCE_INSTANCE_URL" in str(error) and "HUBSPOT_ACCESS_TOKEN" in str(error)
