"""In-memory HubSpot CRM data for the sandbox fake: objects, associations, owners, properties.

Vendor-shaped: every property value is a string, datetimes are ISO-8601 with milliseconds
and `Z`, `hs_lastmodifieddate` (contacts: `lastmodifieddate`) bumps on every write, and every
write is kept in the property's history (served as `propertiesWithHistory`, newest first).
Archiving a record drops its associations from the live index (reads of the other side no
longer see it) but keeps them on the archived copy (served by `?archived=true&associations=`:
an assumption, HubSpot does not document it). Seeded from a sandbox Portfolio (companies,
renewal deals, tickets, contacts with a `healthbot_champion` flag whose departure sets
`healthbot_left_company` at the left date); `hubspot_api.py` serves it over HTTP.

Opt-in, for a customer in both CRMs (`seed(..., salesforce_ids=, duplicates=)`): the
`salesforceaccountid` company property HubSpot's Salesforce integration keeps (the Salesforce
Account Id of the account the company syncs with), and a second company sharing a company's
domain (a duplicate someone created by hand).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time

LASTMOD = "hs_lastmodifieddate"
CONTACT_LASTMOD = "lastmodifieddate"
DATETIME_PROPS = {
    LASTMOD,
    CONTACT_LASTMOD,
    "createdate",
    "closedate",
    "closed_date",
    "notes_last_contacted",
    "healthbot_last_exec_meeting",
    "hs_lifecyclestage_customer_date",
    "healthbot_updated_at",
}
DEFAULT_PROPS = ("createdate", LASTMOD, "hs_object_id")
TYPES = ("companies", "deals", "tickets", "contacts")
TICKET_STAGE = {"new": "1", "pending": "2", "open": "3", "solved": "4", "closed": "4"}
TICKET_PRIORITY = {"low": "LOW", "normal": "MEDIUM", "high": "HIGH", "urgent": "URGENT"}
COMPANY_ID_BASE, DEAL_ID_BASE, OWNER_ID_BASE = 10_000, 5_000_000, 90_000
CONTACT_ID_BASE = 700_000
CONTACT_PROPERTIES = (("healthbot_champion", "Champion"), ("healthbot_left_company", "Left"))
SALESFORCE_ACCOUNT_ID = "salesforceaccountid"  # kept by HubSpot's Salesforce integration
DAY_MS = 86_400_000
SINGULAR = {"companies": "company", "deals": "deal", "tickets": "ticket", "contacts": "contact"}


def spread(key: str, span_ms: int) -> int:
    """A stable pseudo-random offset in [0, span_ms): seeded records are last modified at
    realistic, scattered instants (ties only where a test makes them on purpose)."""
    return zlib.crc32(key.encode()) % max(1, span_ms)


def lastmod_of(object_type: str) -> str:
    return CONTACT_LASTMOD if object_type == "contacts" else LASTMOD


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def ms(value: datetime | date | str) -> int:
    if isinstance(value, str):
        if value.lstrip("-").isdigit():
            return int(value)
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if not isinstance(value, datetime):
        value = datetime.combine(value, time(), UTC)
    return int(value.timestamp() * 1000)


def sort_key(prop: str, value: str | None) -> tuple:
    """How search compares a property value: datetimes by instant, numbers numerically."""
    if value is None or value == "":
        return (1, 0, "")
    if prop in DATETIME_PROPS:
        try:
            return (0, ms(value), "")
        except ValueError:
            return (0, 0, value)
    try:
        return (0, float(value), "")
    except ValueError:
        return (0, 0, value.lower())


@dataclass
class HubSpotStore:
    now_ms: int = 0  # the fake's clock: writes stamp hs_lastmodifieddate with it, then tick
    objects: dict[str, dict[str, dict]] = field(default_factory=lambda: {t: {} for t in TYPES})
    archived: dict[str, dict[str, dict]] = field(default_factory=lambda: {t: {} for t in TYPES})
    assoc: dict[tuple[str, str], dict[str, list[str]]] = field(default_factory=dict)
    owners: list[dict] = field(default_factory=list)
    properties: dict[str, dict[str, dict]] = field(default_factory=lambda: {t: {} for t in TYPES})
    # (type, id) -> property -> [(value, epoch ms)], oldest first
    history: dict[tuple[str, str], dict[str, list[tuple[str, int]]]] = field(default_factory=dict)
    # (type, id) of an archived record -> {other type: [ids]} as they were when archived
    archived_assoc: dict[tuple[str, str], dict[str, list[str]]] = field(default_factory=dict)
    contact_ids: dict[str, str] = field(default_factory=dict)  # portfolio id -> contact id
    duplicates: dict[str, str] = field(default_factory=dict)  # duplicate company -> original
    # (type, property) the portal lacks: left out of every answer, as HubSpot leaves out
    # unknown names asked for in `properties`
    absent: set[tuple[str, str]] = field(default_factory=set)

    def __post_init__(self) -> None:
        for name, label in CONTACT_PROPERTIES:
            self.define("contacts", name, label, "bool", "booleancheckbox")

    # -- writes ------------------------------------------------------------------------
    def tick(self) -> int:
        self.now_ms += 1
        return self.now_ms

    def put(
        self,
        object_type: str,
        obj_id: str,
        props: dict[str, str],
        *,
        created_ms: int | None = None,
        modified_ms: int | None = None,
    ) -> dict:
        mod = modified_ms if modified_ms is not None else self.tick()
        created = created_ms if created_ms is not None else mod
        lastmod = lastmod_of(object_type)
        properties = {"hs_object_id": obj_id, "createdate": iso(created), lastmod: iso(mod)}
        properties.update({k: v for k, v in props.items() if v is not None})
        self.history[(object_type, obj_id)] = {
            k: [(v, created)] for k, v in properties.items() if k != lastmod
        }
        obj = {
            "id": obj_id,
            "properties": properties,
            "createdAt": iso(created),
            "updatedAt": iso(mod),
            "archived": False,
        }
        self.objects[object_type][obj_id] = obj
        return obj

    def update(
        self,
        object_type: str,
        obj_id: str,
        props: dict[str, str | None],
        *,
        modified_ms: int | None = None,
    ) -> dict:
        obj = self.objects[object_type][obj_id]
        mod = modified_ms if modified_ms is not None else self.tick()
        hist = self.history.setdefault((object_type, obj_id), {})
        for k, v in props.items():
            if v is None:
                obj["properties"].pop(k, None)
            else:
                obj["properties"][k] = v
            hist.setdefault(k, []).append(("" if v is None else v, mod))
        obj["properties"][lastmod_of(object_type)] = iso(mod)
        obj["updatedAt"] = iso(mod)
        return obj

    def archive(self, object_type: str, obj_id: str) -> dict:
        obj = self.objects[object_type].pop(obj_id)
        at = self.tick()
        obj.update(archived=True, archivedAt=iso(at))
        self.archived[object_type][obj_id] = obj
        kept = self.archived_assoc.setdefault((object_type, obj_id), {})
        for (a_type, b_type), links in self.assoc.items():
            if a_type == object_type and obj_id in links:
                kept[b_type] = links.get(obj_id, [])
                for other in kept[b_type]:
                    self.dissociate(a_type, obj_id, b_type, other)
        return obj

    def define(
        self,
        object_type: str,
        name: str,
        label: str,
        type_: str,
        field: str,
        *,
        group: str = "healthbot",
    ) -> None:
        """A custom property definition (searching on an undefined healthbot_* one is a 400)."""
        self.properties[object_type][name] = {
            "name": name,
            "label": label,
            "type": type_,
            "fieldType": field,
            "groupName": group,
            "archived": False,
        }

    def associate(self, a_type: str, a_id: str, b_type: str, b_id: str) -> None:
        self.assoc.setdefault((a_type, b_type), {}).setdefault(a_id, []).append(b_id)
        self.assoc.setdefault((b_type, a_type), {}).setdefault(b_id, []).append(a_id)

    def dissociate(self, a_type: str, a_id: str, b_type: str, b_id: str) -> None:
        for x, x_id, y, y_id in ((a_type, a_id, b_type, b_id), (b_type, b_id, a_type, a_id)):
            links = self.assoc.get((x, y), {})
            if y_id in links.get(x_id, []):
                links[x_id] = [i for i in links[x_id] if i != y_id]
                if not links[x_id]:
                    del links[x_id]

    def associated(self, from_type: str, to_type: str, obj_id: str) -> list[str]:
        return list(self.assoc.get((from_type, to_type), {}).get(obj_id, []))

    # -- reads -------------------------------------------------------------------------
    def view(
        self,
        obj: dict,
        props: list[str] | None,
        *,
        kind: str = "",
        with_history: list[str] | None = None,
        associations: list[str] | None = None,
    ) -> dict:
        """The object as the API returns it: only the asked-for properties (plus defaults),
        the asked-for property histories (newest first) and associations."""
        wanted = set(DEFAULT_PROPS) | {lastmod_of(kind)} | set(props or ())
        out = dict(obj)
        wanted -= {name for t, name in self.absent if t == kind}
        out["properties"] = {k: v for k, v in obj["properties"].items() if k in wanted}
        for k in props or ():
            if k in wanted:
                out["properties"].setdefault(k, None)
        if with_history:
            hist = self.history.get((kind, obj["id"]), {})
            out["propertiesWithHistory"] = {
                k: [
                    {"value": v, "timestamp": iso(at), "sourceType": "API", "sourceId": "sandbox"}
                    for v, at in reversed(hist[k])
                ]
                for k in with_history
                if k in hist
            }
        if associations:
            key = (kind, obj["id"])
            found = {
                t: self.archived_assoc.get(key, {}).get(t) or self.associated(kind, t, obj["id"])
                for t in associations
            }
            label = lambda t: f"{SINGULAR[kind]}_to_{SINGULAR[t]}"  # noqa: E731
            out["associations"] = {
                t: {"results": [{"id": i, "type": label(t)} for i in ids]}
                for t, ids in found.items()
                if ids
            }
        return out

    def search(self, object_type: str, filter_groups: list[dict], sorts: list) -> list[dict]:
        rows = [
            o
            for o in self.objects[object_type].values()
            if not filter_groups or any(_matches(o, g.get("filters", [])) for g in filter_groups)
        ]
        rows.sort(key=lambda o: int(o["id"]) if o["id"].isdigit() else 0)
        for s in reversed(sorts or []):
            if isinstance(s, str):
                prop, desc = s.lstrip("-"), s.startswith("-")
            else:
                prop, desc = s.get("propertyName", ""), s.get("direction") == "DESCENDING"
            rows.sort(key=lambda o: sort_key(prop, o["properties"].get(prop)), reverse=desc)
        return rows

    # -- seeding -----------------------------------------------------------------------
    def seed(self, portfolio, **options) -> dict[str, str]:
        """Load a Portfolio (connectors.sandbox.hubspot_seed); returns {portfolio account
        external_id: HubSpot company id}."""
        from connectors.sandbox.hubspot_seed import seed

        return seed(self, portfolio, **options)


def _matches(obj: dict, filters: list[dict]) -> bool:
    props = obj["properties"]
    for f in filters:
        prop, op = f.get("propertyName", ""), f.get("operator", "EQ")
        have = props.get(prop)
        if op == "HAS_PROPERTY":
            ok = have not in (None, "")
        elif op == "NOT_HAS_PROPERTY":
            ok = have in (None, "")
        elif have in (None, ""):
            ok = False
        else:
            k = sort_key(prop, have)
            if op in ("IN", "NOT_IN"):
                values = {sort_key(prop, v) for v in f.get("values", [])}
                ok = (k in values) == (op == "IN")
            elif op == "BETWEEN":
                ok = sort_key(prop, f["value"]) <= k <= sort_key(prop, f["highValue"])
            else:
                v = sort_key(prop, f.get("value"))
                ok = {
                    "EQ": k == v,
                    "NEQ": k != v,
                    "GT": k > v,
                    "GTE": k >= v,
                    "LT": k < v,
                    "LTE": k <= v,
                }.get(op, False)
        if not ok:
            return False
    return True
