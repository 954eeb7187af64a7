"""The Account custom fields healthbot writes scores into, created through the Salesforce
Metadata API (simple-salesforce's `sf.mdapi`: zeep over SOAP).

The calls it makes, field-level security and what needs a permission are in
docs/connectors.md, "Salesforce: creating and updating the score fields"."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from zeep.exceptions import Error as ZeepError
from zeep.exceptions import Fault

from connectors.base import (
    AuthConnectorError,
    ConnectorError,
    PermanentConnectorError,
    TransientConnectorError,
)
from connectors.salesforce.client import RetryingSession, SalesforceClient
from connectors.salesforce.sink import DRIVERS_MAX

OBJECT = "Account"
PER_CALL = 10  # components per createMetadata / readMetadata call
TIERS = {
    "healthy": "Healthy",
    "monitor": "Monitor",
    "at_risk": "At risk",
    "critical": "Critical",
    "insufficient": "Insufficient data",  # too little data for a tier
}
DESCRIPTION = "Written by healthbot (customer health score); edits are overwritten."
FLS_STEP = (
    "Salesforce shows a new field to nobody until field-level security grants it: in Setup > "
    "Object Manager > Account > Fields & Relationships, open each field > Set Field-Level "
    "Security and make it Visible (not Read-Only) for the profile of the user healthbot signs "
    "in as (or grant Edit on the fields in a permission set assigned to that user). Then run "
    "`healthbot crm setup` again: it lists every field it can see as already there."
)
PERMISSION = (
    "to create or update fields the Salesforce user needs the permission 'Modify Metadata "
    "Through Metadata API Functions' (or 'Modify All Data')"
)
_FAILED = re.compile(r"^(\S+): (.*)$", re.MULTILINE)
_ERROR = re.compile(r"\((\w+), (.*?)\), ")


@dataclass(frozen=True)
class FieldSpec:
    """One Account field: API name, label and Metadata API type with its size."""

    name: str
    label: str
    type: str  # Number, Picklist, TextArea, DateTime, Text
    precision: int | None = None  # Number: digits in all
    scale: int | None = None  # Number: digits after the decimal point
    length: int | None = None  # Text; TextArea is always 255
    values: tuple[str, ...] = ()  # Picklist API names

    @property
    def full_name(self) -> str:
        return f"{OBJECT}.{self.name}"

    def setup_screen(self) -> tuple[str, str]:
        """(type, size) as Setup > Object Manager > New Field asks for them."""
        if self.type == "Number":
            places = self.scale or 0
            return "Number", f"Length {(self.precision or 0) - places}, Decimal Places {places}"
        if self.type == "Picklist":
            return "Picklist", "values " + ", ".join(self.values) + " (restricted)"
        if self.type == "TextArea":
            return "Text Area", f"{DRIVERS_MAX} characters"
        if self.type == "Text":
            return "Text", f"Length {self.length}"
        return {"DateTime": "Date/Time"}.get(self.type, self.type), ""

    def component(
        self,
        md: Any,
        *,
        values: Sequence[tuple[str, str]] | None = None,
        label: str | None = None,
        restricted: bool = True,
    ) -> Any:
        """The CustomField for createMetadata, or for updateMetadata with the picklist's whole
        value set `values` [(API name, label)] (`md` is simple-salesforce's `sf.mdapi`)."""
        attrs: dict[str, Any] = {}
        if self.type == "Number":
            attrs = {"precision": self.precision, "scale": self.scale}
        elif self.type == "Text":
            attrs = {"length": self.length}
        elif self.type == "Picklist":
            pairs = values if values is not None else [(v, TIERS.get(v, v)) for v in self.values]
            entries = [md.CustomValue(fullName=v, label=lbl, default=False) for v, lbl in pairs]
            attrs = {
                "valueSet": md.ValueSet(
                    restricted=restricted,
                    valueSetDefinition=md.ValueSetValuesDefinition(sorted=False, value=entries),
                )
            }
        return md.CustomField(
            fullName=self.full_name,
            label=label or self.label,
            type=self.type,
            description=DESCRIPTION,
            **attrs,
        )


def field_specs(names: Mapping[str, str]) -> list[FieldSpec]:
    """The five score fields under the names in use (`sink.field_names(...)`)."""
    return [
        FieldSpec(names["score"], "Health Score", "Number", precision=5, scale=0),
        FieldSpec(names["tier"], "Health Tier", "Picklist", values=tuple(TIERS)),
        FieldSpec(names["trend_30d"], "Health 30-day Trend", "Number", precision=5, scale=1),
        FieldSpec(names["drivers"], "Health Drivers", "TextArea"),
        FieldSpec(names["updated_at"], "Health Updated At", "DateTime"),
    ]


@dataclass(frozen=True)
class MissingValues:
    """A picklist in the org that lacks values healthbot writes to it."""

    spec: FieldSpec
    missing: tuple[str, ...]  # API names to add
    have: tuple[tuple[str, str], ...]  # (API name, label) the org has, in its order
    label: str  # the field's label in the org
    restricted: bool

    def component(self, md: Any, current: Any = None) -> Any:
        """The CustomField for updateMetadata. updateMetadata replaces the whole definition, so
        the org's own (`current`, from readMetadata: help text, description, inactive values
        and all) goes back with the missing values appended (one an admin deactivated is
        made active again: a second value of that name would be refused); without it, one
        rebuilt from the describe: every value the org has, then the missing."""
        defined = getattr(getattr(current, "valueSet", None), "valueSetDefinition", None)
        if defined is not None and defined.value is not None:
            have = {str(v.fullName): v for v in defined.value}
            for v in self.missing:
                if v in have:
                    have[v].isActive = True
                else:
                    defined.value.append(
                        md.CustomValue(fullName=v, label=TIERS.get(v, v), default=False)
                    )
            return current
        added = [(v, TIERS.get(v, v)) for v in self.missing]
        values = [*self.have, *added]
        return self.spec.component(md, values=values, label=self.label, restricted=self.restricted)

    def setup_steps(self) -> str:
        """Where and what to add by hand, as Setup asks for it."""
        values = ", ".join(f'{v} (label "{TIERS.get(v, v)}")' for v in self.missing)
        return (
            f"add the value{'s' if len(self.missing) > 1 else ''} {values} in Setup > Object "
            f"Manager > {OBJECT} > Fields & Relationships > {self.label} > Values > New"
        )


def missing_values(spec: FieldSpec, described: Mapping[str, Any]) -> MissingValues | None:
    """The values of `spec` a picklist field of the describe (`picklistValues`) lacks."""
    if spec.type != "Picklist" or described.get("type") != "picklist":
        return None
    have = tuple(
        (str(p["value"]), str(p.get("label") or p["value"]))
        for p in described.get("picklistValues") or []
        if p.get("active", True)
    )
    names = {v for v, _ in have}
    missing = tuple(v for v in spec.values if v not in names)
    if not missing:
        return None
    label = str(described.get("label") or spec.label)
    return MissingValues(spec, missing, have, label, bool(described.get("restrictedPicklist")))


@dataclass
class FieldsSetup:
    created: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    hidden: list[str] = field(default_factory=list)  # exist; the API user cannot see them
    updated: list[MissingValues] = field(default_factory=list)  # values added
    by_hand: list[FieldSpec] = field(default_factory=list)
    values_by_hand: list[MissingValues] = field(default_factory=list)
    reason: str = ""  # why `by_hand` or `values_by_hand` is not empty
    api_calls: int = 0


class NoMetadataAccess(PermanentConnectorError):
    """The user may not use the Metadata API (INSUFFICIENT_ACCESS)."""


def ensure_fields(client: SalesforceClient, specs: Sequence[FieldSpec]) -> FieldsSetup:
    described = {f["name"].lower(): f for f in client.describe(OBJECT)["fields"]}
    seen = [s for s in specs if s.name.lower() in described]
    stale = [m for s in seen if (m := missing_values(s, described[s.name.lower()]))]
    result = FieldsSetup(present=[s.name for s in seen if s not in {m.spec for m in stale}])
    missing = [s for s in specs if s.name.lower() not in described]
    if not missing and not stale:
        result.api_calls = client.api_calls
        return result
    md, session = metadata_api(client)
    try:
        found = read(md, [s.full_name for s in missing] + [m.spec.full_name for m in stale])
        result.hidden = [s.name for s in missing if s.full_name.lower() in found]
        todo = [s for s in missing if s.name not in result.hidden]
        failed = save(md, "createMetadata", {s.full_name: s.component(md) for s in todo})
        updates = {
            m.spec.full_name: m.component(md, found.get(m.spec.full_name.lower())) for m in stale
        }
        refused = save(md, "updateMetadata", updates)
    except NoMetadataAccess as exc:
        result.by_hand = [s for s in missing if s.name not in result.hidden]
        result.values_by_hand = stale
        result.reason = f"{exc}: {PERMISSION}"
        return result
    finally:
        result.api_calls = client.api_calls + session.calls
    result.created = [s.name for s in todo if s.full_name not in failed]
    result.by_hand = [s for s in todo if s.full_name in failed]
    result.updated = [m for m in stale if m.spec.full_name not in refused]
    result.values_by_hand = [m for m in stale if m.spec.full_name in refused]
    failed.update(refused)
    result.reason = "; ".join(f"{name.partition('.')[2]}: {why}" for name, why in failed.items())
    return result


def metadata_api(client: SalesforceClient) -> tuple[Any, RetryingSession]:
    """simple-salesforce's `sf.mdapi`, its zeep client sending through a session of ours."""
    md = client.sf.mdapi
    session = RetryingSession(timeout=client.session.timeout, max_retries=0)
    session.ca_bundle = client.session.ca_bundle
    md._client.transport.session = session  # the only handle on zeep's transport
    md._client.transport.operation_timeout = client.session.timeout
    return md, session


def read(md: Any, full_names: Sequence[str]) -> dict[str, Any]:
    """The definitions of the fields among `full_names` that exist in the org, by lower-cased
    full name (readMetadata, 10 per call, none for none; a missing one comes back empty)."""
    found: dict[str, Any] = {}
    for k in range(0, len(full_names), PER_CALL):
        records = soap("readMetadata", md.CustomField.read, list(full_names[k : k + PER_CALL]))
        for rec in records if isinstance(records, list) else [records]:
            if rec is not None and getattr(rec, "fullName", None):
                found[str(rec.fullName).lower()] = rec
    return found


def save(md: Any, what: str, components: Mapping[str, Any]) -> dict[str, str]:
    """createMetadata or updateMetadata of {full name: CustomField}, 10 per call (none for
    none); returns {full name: why} for those refused."""
    call = md.CustomField.create if what == "createMetadata" else md.CustomField.update
    names, failed = list(components), {}
    for k in range(0, len(names), PER_CALL):
        chunk = names[k : k + PER_CALL]
        try:
            soap(what, call, [components[n] for n in chunk])
        except ConnectorError:
            raise
        except Exception as exc:  # simple-salesforce lists every failed SaveResult in one text
            refused = refusals(str(exc), set(chunk))
            if not refused:
                raise
            failed.update(refused)
    return failed


def refusals(text: str, full_names: set[str]) -> dict[str, str]:
    """'\\nAccount.X__c: (CODE, message), ' lines -> {full name: 'CODE: message'}."""
    out = {}
    for name, errors in _FAILED.findall(text):
        if name in full_names:
            found = _ERROR.findall(errors + " ")
            out[name] = "; ".join(f"{code}: {msg}" for code, msg in found) or errors.strip(", ")
    return out


def soap(what: str, call: Callable, *args: Any) -> Any:
    """One Metadata API call; SOAP faults become our connector errors."""
    try:
        return call(*args)
    except Fault as exc:
        raise fault_error(exc, what) from exc
    except ZeepError as exc:
        raise PermanentConnectorError(f"Salesforce Metadata API {what}: {exc}") from exc


def fault_error(exc: Fault, what: str) -> ConnectorError:
    code = str(exc.code or "").rpartition(":")[2]
    detail = f"{exc.message} (Metadata API {what})"
    if code == "INSUFFICIENT_ACCESS":
        return NoMetadataAccess(detail)
    if code == "INVALID_SESSION_ID":
        return AuthConnectorError(
            f"Salesforce rejected the session: {detail}; set SALESFORCE_ACCESS_TOKEN to a valid "
            "access token"
        )
    if code == "REQUEST_LIMIT_EXCEEDED":
        return TransientConnectorError(f"Salesforce API limit reached: {detail}")
    return PermanentConnectorError(f"Salesforce refused {detail}")
