"""What a HubSpot sync does without the custom `healthbot_*` properties a portal lacks.

HubSpot leaves a property the portal does not have out of every search result (one it has
comes back, null when empty), so the first record of a page tells which are missing, at no extra
request; a search filtering on a missing one (the champion flag) is a 400. Without a property
only what reads it is off: the rest of the record is used, and each missing property is
reported once per run (`SwitchedOff`: sync report, `healthbot doctor`).
"""

from __future__ import annotations

from connectors.hubspot.mapping import CHAMPION, SOURCE
from health.records import SwitchedOff

# the custom properties read, by object type -> (what is off without it, the property's type)
CUSTOM_PROPS = {
    "companies": {
        "healthbot_segment": ("segment from this property (numberofemployees bands still "
                              "apply)", "enumeration: enterprise, mid_market, smb"),
        "healthbot_arr": ("ARR from this property (annualrevenue is read instead)", "number"),
        "healthbot_renewal_date": ("renewal dates (no renewal-window tier adjustment)", "date"),
        "healthbot_last_exec_meeting": ("the exec_meeting signal", "datetime"),
    },
    "deals": {"healthbot_prior_amount": ("renewal ARR change", "number")},
    "contacts": {CHAMPION: ("the champion_left signal (contacts are not read)", "bool")},
}  # fmt: skip


def switched_off(kind: str, name: str) -> SwitchedOff:
    effect, ptype = CUSTOM_PROPS[kind][name]
    fix = f"create the {kind} property {name} ({ptype}) in HubSpot"
    return SwitchedOff(SOURCE, f"{kind}.{name}", effect, name, fix)


def missing(kind: str, records: list[dict]) -> list[SwitchedOff]:
    """The custom properties of `kind` absent from the first record of a page."""
    props = (records[0].get("properties") if records else None) or {}
    if not records or not isinstance(props, dict):
        return []
    return [switched_off(kind, name) for name in CUSTOM_PROPS.get(kind, {}) if name not in props]
