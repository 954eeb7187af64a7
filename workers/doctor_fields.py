"""The doctor's look at the score fields on a CRM (one read-only call each): every field is
there, and the tier field offers every tier healthbot writes (a field set up before a tier was
added refuses scores in that tier). A problem raises MissingFields with the fix."""

from __future__ import annotations

from collections.abc import Mapping

from connectors.hubspot.client import HubSpotClient
from connectors.hubspot.sink import HubSpotScoreSink, missing_options
from connectors.salesforce.client import SalesforceClient
from connectors.salesforce.setup import field_specs, missing_values
from connectors.salesforce.sink import field_names

CRM_SETUP = "run `healthbot crm setup`"
RETRY_PARKED = "then `healthbot writeback --retry-parked`"


class MissingFields(Exception):
    """Some score fields are not on the CRM yet, or lack tier values."""

    def __init__(self, message: str, fix: str = CRM_SETUP):
        super().__init__(message)
        self.fix = fix


def salesforce(client: SalesforceClient, renames: Mapping[str, str] | None) -> str:
    """One describe of Account."""
    specs = field_specs(field_names(renames))
    have = {f["name"].lower(): f for f in client.describe("Account").get("fields", [])}
    missing = [s.name for s in specs if s.name.lower() not in have]  # names ignore case
    lacking = {
        s.name: list(m.missing)
        for s in specs
        if s.name.lower() in have
        and (m := missing_values(s, have[s.name.lower()]))
        and m.restricted  # an unrestricted picklist takes any value: writes go through
    }
    return result("Account fields", [s.name for s in specs], missing, lacking)


def hubspot(client: HubSpotClient, renames: Mapping[str, str] | None) -> str:
    """One read of the company property definitions."""
    wanted = HubSpotScoreSink(client, properties=renames).definitions()
    have = {p.get("name"): p for p in client.properties("companies")}
    missing = [d["name"] for d in wanted if d["name"] not in have]
    lacking = {
        d["name"]: [o["value"] for o in added]
        for d in wanted
        if d["name"] in have and (added := missing_options(d, have[d["name"]]))
    }
    return result("company properties", [d["name"] for d in wanted], missing, lacking)


def result(what: str, wanted: list[str], missing: list[str], lacking: dict[str, list[str]]) -> str:
    """The check's detail; `lacking`: {field: the tier values it does not offer}."""
    problems = [f"missing {what}: {', '.join(missing)}"] if missing else []
    problems += [
        f"{name} lacks the tier value{'s' if len(values) > 1 else ''} {', '.join(values)}: "
        "scores in that tier are refused"
        for name, values in lacking.items()
    ]
    if problems:
        raise MissingFields(
            "; ".join(problems), f"{CRM_SETUP}, {RETRY_PARKED}" if lacking else CRM_SETUP
        )
    return f"all {len(wanted)} {what} present"
