"""Picklist value sets of the Salesforce fake: what describe reports for a picklist field
(`picklistValues`, `restrictedPicklist`) and the check every record write makes.

Each sandbox keeps its own value sets (`SalesforceSandbox.picklists`, {(object, field):
ValueSet}); the score fields' tier picklist starts restricted, with every tier, or with the
values an org set up earlier has (`start_salesforce_sandbox(tier_values=...)`). A field created
or updated through the Metadata API takes the value set it was sent. A picklist without a value
set here is unrestricted, as most standard picklists are: any value is accepted.

A value outside a restricted picklist fails that record with Salesforce's per-record error:
`INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST`, "bad value for restricted picklist field: <value>",
fields [<field>] (a SaveResult error in sObject Collections, a 400 for a single-record PATCH,
`sf__Error` in a Bulk API 2.0 job's failed results).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

RESTRICTED = "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
TIER_FIELD = ("Account", "Health_Tier__c")
TIER_LABELS = {  # what `healthbot crm setup` creates (connectors.salesforce.setup.TIERS)
    "healthy": "Healthy",
    "monitor": "Monitor",
    "at_risk": "At risk",
    "critical": "Critical",
    "insufficient": "Insufficient data",
}


@dataclass
class ValueSet:
    values: list[tuple[str, str]] = field(default_factory=list)  # (API name, label), in order
    restricted: bool = True

    def names(self) -> set[str]:
        return {name for name, _ in self.values}


def tier_value_set(names: Iterable[str] | None = None) -> ValueSet:
    """The tier picklist of an org: every tier, or just `names` (an org set up earlier)."""
    chosen = TIER_LABELS if names is None else list(names)
    return ValueSet([(n, TIER_LABELS.get(n, n)) for n in chosen])


def describe_values(value_set: ValueSet | None) -> dict[str, Any]:
    """The picklist keys of a describe field: `picklistValues` (active entries) and
    `restrictedPicklist`."""
    if value_set is None:
        return {"picklistValues": [], "restrictedPicklist": False}
    entries = [
        {"active": True, "defaultValue": False, "label": label, "validFor": None, "value": name}
        for name, label in value_set.values
    ]
    return {"picklistValues": entries, "restrictedPicklist": value_set.restricted}


def refusal(
    picklists: Mapping[tuple[str, str], ValueSet], obj: str, name: str, value: Any
) -> tuple[str, str, list[str]] | None:
    """(statusCode, message, fields) when `value` may not be written to a restricted
    picklist; None when it may (null clears the field, as Salesforce allows)."""
    value_set = picklists.get((obj, name))
    if value is None or value_set is None or not value_set.restricted:
        return None
    if str(value) in value_set.names():
        return None
    return RESTRICTED, f"bad value for restricted picklist field: {value}", [name]
