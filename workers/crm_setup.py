"""`setup_crm(settings)`: create the fields healthbot writes scores into, on every configured
CRM, idempotently; where it may not, say exactly which fields to create by hand, and why.

- Salesforce: the five Account custom fields (`connectors.salesforce.setup`): one describe,
  and only when something is missing one readMetadata and one createMetadata.
- HubSpot: the five company properties in the "Customer health" group
  (`HubSpotScoreSink.ensure_properties`): one GET, and only when something is missing one
  group POST and one batch create. A 403 (the private app lacks the
  `crm.schemas.companies.write` scope) lists the missing properties to create by hand.
One CRM failing (unreachable, token rejected) is reported on its line; the others carry on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from connectors.base import AuthConnectorError, ConnectorError
from connectors.hubspot.sink import GROUP, GROUP_LABEL, HubSpotScoreSink
from connectors.hubspot.source import build_client as hubspot_client
from connectors.registry import configured_sinks
from connectors.salesforce.setup import FLS_STEP, FieldSpec, ensure_fields, field_specs
from connectors.salesforce.sink import field_names
from connectors.salesforce.source import build_client as salesforce_client
from health.settings import Settings

HUBSPOT_SCOPE = "crm.schemas.companies.write"
HUBSPOT_TYPES = {  # (type, fieldType) -> the field type as HubSpot's property editor names it
    ("number", "number"): "Number",
    ("enumeration", "select"): "Dropdown select",
    ("string", "textarea"): "Multi-line text",
    ("datetime", "date"): "Date and time picker",
}


@dataclass(frozen=True)
class ManualField:
    """A field to create by hand, as the CRM's setup screen asks for it."""

    name: str  # API name (Salesforce) / internal name (HubSpot)
    label: str
    type: str
    size: str  # length / decimal places / options; "" when the type has none


@dataclass
class CrmSetup:
    crm: str  # "salesforce" / "hubspot"
    created: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    hidden: list[str] = field(default_factory=list)  # exist, but the API user cannot see them
    by_hand: list[ManualField] = field(default_factory=list)
    reason: str = ""  # why `by_hand` is not empty
    error: str = ""  # the CRM could not be set up at all
    notes: list[str] = field(default_factory=list)

    @property
    def needs_admin(self) -> bool:
        """A person must act before scores can be written here."""
        return bool(self.by_hand or self.hidden or self.error)


def setup_crm(settings: Settings) -> list[CrmSetup]:
    """One CrmSetup per configured CRM (none configured: an empty list)."""
    return [_guarded(name, settings) for name in configured_sinks(settings)]


def setup_salesforce(settings: Settings) -> CrmSetup:
    specs = field_specs(field_names(settings.salesforce_score_fields))
    done = ensure_fields(salesforce_client(settings), specs)
    result = CrmSetup(
        "salesforce",
        created=done.created,
        present=done.present,
        hidden=done.hidden,
        by_hand=[salesforce_manual(s) for s in done.by_hand],
        reason=done.reason,
    )
    if done.created or done.hidden:
        result.notes.append(FLS_STEP)
    return result


def salesforce_manual(spec: FieldSpec) -> ManualField:
    kind, size = spec.setup_screen()
    return ManualField(spec.name, spec.label, kind, size)


def setup_hubspot(settings: Settings) -> CrmSetup:
    sink = HubSpotScoreSink(hubspot_client(settings), properties=settings.hubspot_score_properties)
    wanted = sink.definitions()
    try:
        created = sink.ensure_properties()
    except AuthConnectorError as exc:
        if not str(exc).startswith("HubSpot 403"):
            raise
        return hubspot_by_hand(sink, wanted, str(exc))
    present = [d["name"] for d in wanted if d["name"] not in created]
    return CrmSetup("hubspot", created=created, present=present)


def hubspot_by_hand(sink: HubSpotScoreSink, wanted: list[dict], why: str) -> CrmSetup:
    """The token may not create properties: list those missing (all five when it may not even
    read them) to create by hand in the group."""
    try:
        have = {p.get("name") for p in sink.client.properties("companies")}
    except AuthConnectorError:
        have = set()
    return CrmSetup(
        "hubspot",
        present=[d["name"] for d in wanted if d["name"] in have],
        by_hand=[hubspot_manual(d) for d in wanted if d["name"] not in have],
        reason=(
            f"{why}: give the private app the {HUBSPOT_SCOPE} scope, or create the properties "
            f'on Companies in the group "{GROUP_LABEL}" (internal name {GROUP})'
        ),
    )


def hubspot_manual(definition: dict) -> ManualField:
    key = (definition["type"], definition["fieldType"])
    kind = HUBSPOT_TYPES.get(key, "/".join(key))
    options = [o["value"] for o in definition.get("options") or []]
    size = "options " + ", ".join(options) if options else ""
    return ManualField(definition["name"], definition["label"], kind, size)


SETUPS: dict[str, Callable[[Settings], CrmSetup]] = {
    "salesforce": setup_salesforce,
    "hubspot": setup_hubspot,
}


def _guarded(name: str, settings: Settings) -> CrmSetup:
    try:
        return SETUPS[name](settings)
    except ConnectorError as exc:  # also unknown keys in a rename setting
        return CrmSetup(name, error=str(exc))
