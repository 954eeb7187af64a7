"""`setup_crm(settings)`: create the fields healthbot writes scores into, on every configured
CRM, idempotently; where it may not, say exactly which fields to create by hand, and why.

- Salesforce: the five Account custom fields (`connectors.salesforce.setup`): one describe,
  and only when something is missing one readMetadata and one createMetadata; a tier picklist
  lacking a tier (set up before the tier existed) is brought up to date by one updateMetadata.
- HubSpot: the five company properties in the "Customer health" group
  (`HubSpotScoreSink.ensure_properties`): one GET, and only when something is missing one
  group POST and one batch create; a tier property lacking options, one PATCH. A 403 (the
  private app lacks the `crm.schemas.companies.write` scope) lists the missing properties to
  create, and the missing options to add, by hand.
One CRM failing (unreachable, token rejected) is reported on its line; the others carry on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from connectors.base import AuthConnectorError, ConnectorError
from connectors.hubspot.sink import GROUP, GROUP_LABEL, HubSpotScoreSink, missing_options
from connectors.hubspot.source import build_client as hubspot_client
from connectors.registry import configured_sinks
from connectors.salesforce.setup import (
    FLS_STEP,
    FieldSpec,
    MissingValues,
    ensure_fields,
    field_specs,
)
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


@dataclass(frozen=True)
class ManualValues:
    """Values to add by hand to a field that exists (a picklist, a dropdown)."""

    name: str  # API name (Salesforce) / internal name (HubSpot)
    values: list[str]  # the values' API names / internal values
    steps: str  # where and what to add, as the CRM's setup screens ask for it


@dataclass
class CrmSetup:
    crm: str  # "salesforce" / "hubspot"
    created: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    hidden: list[str] = field(default_factory=list)  # exist, but the API user cannot see them
    updated: dict[str, list[str]] = field(default_factory=dict)  # field -> values added
    by_hand: list[ManualField] = field(default_factory=list)
    values_by_hand: list[ManualValues] = field(default_factory=list)
    reason: str = ""  # why `by_hand` or `values_by_hand` is not empty
    error: str = ""  # the CRM could not be set up at all
    notes: list[str] = field(default_factory=list)

    @property
    def needs_admin(self) -> bool:
        """A person must act before scores can be written here."""
        return bool(self.by_hand or self.values_by_hand or self.hidden or self.error)


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
        updated={m.spec.name: list(m.missing) for m in done.updated},
        by_hand=[salesforce_manual(s) for s in done.by_hand],
        values_by_hand=[salesforce_values(m) for m in done.values_by_hand],
        reason=done.reason,
    )
    if done.created or done.hidden:
        result.notes.append(FLS_STEP)
    return result


def salesforce_manual(spec: FieldSpec) -> ManualField:
    kind, size = spec.setup_screen()
    return ManualField(spec.name, spec.label, kind, size)


def salesforce_values(m: MissingValues) -> ManualValues:
    return ManualValues(m.spec.name, list(m.missing), m.setup_steps())


def setup_hubspot(settings: Settings) -> CrmSetup:
    sink = HubSpotScoreSink(hubspot_client(settings), properties=settings.hubspot_score_properties)
    wanted = sink.definitions()
    try:
        done = sink.ensure_properties()
    except AuthConnectorError as exc:
        if not str(exc).startswith("HubSpot 403"):
            raise
        return hubspot_by_hand(sink, wanted, str(exc))
    changed = {*done.created, *done.updated}
    present = [d["name"] for d in wanted if d["name"] not in changed]
    return CrmSetup("hubspot", created=done.created, present=present, updated=done.updated)


def hubspot_by_hand(sink: HubSpotScoreSink, wanted: list[dict], why: str) -> CrmSetup:
    """The token may not change properties: list those missing (all five when it may not even
    read them) to create by hand in the group, and the options missing from those there."""
    try:
        have = {p.get("name"): p for p in sink.client.properties("companies")}
    except AuthConnectorError:
        have = {}
    stale = {
        d["name"]: hubspot_values(have[d["name"]], added)
        for d in wanted
        if d["name"] in have and (added := missing_options(d, have[d["name"]]))
    }
    return CrmSetup(
        "hubspot",
        present=[d["name"] for d in wanted if d["name"] in have and d["name"] not in stale],
        by_hand=[hubspot_manual(d) for d in wanted if d["name"] not in have],
        values_by_hand=list(stale.values()),
        reason=(
            f"{why}: give the private app the {HUBSPOT_SCOPE} scope, or create the properties "
            f'on Companies in the group "{GROUP_LABEL}" (internal name {GROUP})'
            + (", and add the missing options" if stale else "")
        ),
    )


def hubspot_values(existing: dict, added: list[dict]) -> ManualValues:
    """The options to add by hand to the portal's property `existing`."""
    options = ", ".join(f'"{o["label"]}" (internal value {o["value"]})' for o in added)
    steps = (
        f"add the option{'s' if len(added) > 1 else ''} {options} in Settings > Properties > "
        f"Company properties > {existing.get('label') or existing['name']} > Field type"
    )
    return ManualValues(existing["name"], [o["value"] for o in added], steps)


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
