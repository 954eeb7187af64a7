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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

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
        out["properties"] = {k: v for k, v in obj["properties"].items() if k in wanted}
        for k in props or ():
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
    def seed(
        self,
        portfolio,
        *,
        salesforce_ids: Mapping[str, str] | None = None,
        duplicates: Iterable[str] = (),
    ) -> dict[str, str]:
        """Load a Portfolio; returns {portfolio account external_id: HubSpot company id}.

        `salesforce_ids` (portfolio id -> Salesforce Account Id): the portal has the
        Salesforce integration's `salesforceaccountid` property, set on those companies.
        `duplicates` (portfolio ids): each of those companies gets a second company with the
        same domain, after all the others (ids in `self.duplicates`: duplicate -> original).
        Without either, the store is seeded exactly as before."""
        if salesforce_ids is not None:
            self.define(
                "companies",
                SALESFORCE_ACCOUNT_ID,
                "Salesforce Account ID",
                "string",
                "text",
                group="salesforceinformation",
            )
        links = salesforce_ids or {}
        owner_ids: dict[str, str] = {}
        for email in sorted({a.owner for a in portfolio.accounts}):
            oid = str(OWNER_ID_BASE + len(owner_ids) + 1)
            owner_ids[email] = oid
            first = email.split("@")[0].split(".")
            self.owners.append(
                {
                    "id": oid,
                    "email": email,
                    "firstName": first[0].title(),
                    "lastName": first[-1].title(),
                    "userId": int(oid) + 1000,
                    "createdAt": iso(0),
                    "updatedAt": iso(0),
                    "archived": False,
                }
            )
        touches: dict[str, list] = {}
        for t in portfolio.touches:
            touches.setdefault(t.account_id, []).append(t)
        ids = {
            a.external_id: str(COMPANY_ID_BASE + i + 1) for i, a in enumerate(portfolio.accounts)
        }
        horizon = ms(portfolio.end + timedelta(days=1))
        for a in portfolio.accounts:
            ts = touches.get(a.external_id, [])
            last = max((t.occurred_at for t in ts), default=None)
            execs = [t.occurred_at for t in ts if t.executive and t.kind == "meeting"]
            created = ms(a.customer_since)
            cid = ids[a.external_id]
            touched = ms(last) + spread(cid, 60_000) if last else created + spread(cid, DAY_MS)
            self.put(
                "companies",
                ids[a.external_id],
                {
                    "name": a.name,
                    "domain": a.domain,
                    "hubspot_owner_id": owner_ids[a.owner],
                    "healthbot_external_id": a.external_id,
                    "healthbot_segment": a.segment,
                    "healthbot_arr": f"{a.arr:.2f}",
                    "numberofemployees": str(a.seats),
                    "healthbot_renewal_date": a.renewal_date.isoformat(),
                    "hs_lifecyclestage_customer_date": iso(created),
                    "lifecyclestage": "customer",
                    "notes_last_contacted": iso(ms(last)) if last else None,
                    "healthbot_last_exec_meeting": iso(ms(max(execs))) if execs else None,
                    SALESFORCE_ACCOUNT_ID: links.get(a.external_id),
                },
                created_ms=created,
                modified_ms=min(max(created, touched), horizon - 1),
            )
        self._seed_duplicates(portfolio, ids, owner_ids, list(duplicates), horizon)
        for n, r in enumerate(portfolio.renewals, start=1):
            did = str(DEAL_ID_BASE + n)
            won = r.outcome in ("renewed", "expanded")
            closed = ms(r.close_date)
            # closed: edited on its close day; open: last edited some time in the last 90 days
            modified = (
                min(closed + spread(did, DAY_MS), horizon - 1 - spread(did, DAY_MS))
                if r.outcome != "open"
                else horizon - 1 - spread(did, 90 * DAY_MS)
            )
            self.put(
                "deals",
                did,
                {
                    "dealname": f"Renewal {r.close_date.year}",
                    "pipeline": "renewals",
                    "dealstage": {"open": "contractsent", "churned": "closedlost"}.get(
                        r.outcome, "closedwon"
                    ),
                    "dealtype": "expansion" if r.outcome == "expanded" else "existingbusiness",
                    "amount": f"{(r.prior_amount if r.outcome == 'churned' else r.amount):.2f}",
                    "healthbot_prior_amount": f"{r.prior_amount:.2f}",
                    "closedate": iso(closed),
                    "healthbot_external_id": r.external_id,
                    "hs_is_closed_won": "true" if won else "false",
                },
                created_ms=min(closed - 90 * DAY_MS, modified),
                modified_ms=modified,
            )
            self.associate("deals", did, "companies", ids[r.account_id])
        for t in portfolio.tickets:
            created, solved = ms(t.created_at), ms(t.solved_at) if t.solved_at else None
            self.put(
                "tickets",
                t.external_id,
                {
                    "subject": t.subject,
                    "hs_pipeline": "0",
                    "hs_pipeline_stage": TICKET_STAGE[t.status],
                    "hs_ticket_priority": TICKET_PRIORITY[t.priority],
                    "closed_date": iso(solved)
                    if solved and TICKET_STAGE[t.status] == "4"
                    else None,
                },
                created_ms=created,
                modified_ms=min(solved or created + spread(t.external_id, 3_600_000), horizon - 1),
            )
            self.associate("tickets", t.external_id, "companies", ids[t.account_id])
        self._seed_contacts(portfolio, ids)
        self.now_ms = max(self.now_ms, horizon)
        return ids

    def _seed_duplicates(
        self, portfolio, ids: dict[str, str], owners: dict[str, str], which: list, horizon: int
    ) -> None:
        """A second company for each of `which`, with the same domain and name but none of its
        deals, tickets or contacts: someone made it a month after the original (or just before
        the horizon), and logged a call on it two days before the horizon."""
        by_id = {a.external_id: a for a in portfolio.accounts}
        base = COMPANY_ID_BASE + len(portfolio.accounts)
        for n, ext in enumerate(which, start=1):
            a, cid = by_id[ext], str(base + n)
            created = min(ms(a.customer_since) + 30 * DAY_MS, horizon - 1)
            self.put(
                "companies",
                cid,
                {
                    "name": a.name,
                    "domain": a.domain,
                    "hubspot_owner_id": owners[a.owner],
                    "healthbot_segment": a.segment,
                    "lifecyclestage": "customer",
                    "notes_last_contacted": iso(max(created, horizon - 2 * DAY_MS)),
                },
                created_ms=created,
                modified_ms=max(created, horizon - 2 * DAY_MS),
            )
            self.duplicates[cid] = ids[ext]

    def _seed_contacts(self, portfolio, ids: dict[str, str]) -> None:
        """Contacts join at their company's customer_since (last modified that morning, UTC);
        one who left gets `healthbot_left_company = true` during the morning of the left date
        (its last write)."""
        since = {a.external_id: ms(a.customer_since) for a in portfolio.accounts}
        for n, c in enumerate(portfolio.contacts, start=1):
            cid, company = str(CONTACT_ID_BASE + n), ids[c.account_id]
            first, _, last = c.name.partition(" ")
            self.contact_ids[c.external_id] = cid
            self.put(
                "contacts",
                cid,
                {
                    "email": c.email,
                    "firstname": first,
                    "lastname": last,
                    "jobtitle": c.title,
                    "healthbot_champion": "true" if c.is_champion else "false",
                    "associatedcompanyid": company,
                },
                created_ms=since[c.account_id],
                modified_ms=since[c.account_id] + spread(cid, DAY_MS // 2),
            )
            self.associate("contacts", cid, "companies", company)
            if c.left_on is not None:
                left_ms = ms(c.left_on) + spread(f"{cid}-left", DAY_MS // 2)
                left = max(left_ms, since[c.account_id] + DAY_MS // 2)
                self.update("contacts", cid, {"healthbot_left_company": "true"}, modified_ms=left)


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
