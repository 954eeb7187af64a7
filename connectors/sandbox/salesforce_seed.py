"""Schema of the Salesforce fake and its seeding from a sandbox Portfolio.

Stored values are REST-shaped: datetimes `2026-01-01T12:00:00.000+0000` (UTC), dates
`2026-01-01`, booleans, numbers, strings. Every record has Id, IsDeleted, CreatedDate and
SystemModstamp (= its last change in the portfolio's story).

Portfolio -> objects: accounts -> Account (+ one User per owner, one Contract: StartDate =
customer_since, EndDate = renewal_date, Activated); renewals -> Opportunity (Type Renewal,
Amount = ARR after, or at stake when lost; Prior_ARR__c = ARR before); tickets -> Case
(urgent/high/normal/low -> Critical/High/Medium/Low; solved/closed -> IsClosed with ClosedDate;
CSAT__c Good/Bad); touches -> Task (call, email; completed) or Event (meeting), flagged
Executive_Meeting__c; contacts -> Contact (Champion__c, Left_Company__c, Left_Date__c; a contact
who left has a bounced email: EmailBouncedDate = the record's last change). Champions are also
primary contact roles (OpportunityContactRole, IsPrimary): the account's first champion on its
first opportunity, a replacement champion on the later ones. Roles are standard: every org has
them (with Champion__c or not). Deleting a Contact leaves its roles, which keep its ContactId.

Where the story gives only a day (accounts, contracts, opportunities, contacts, users), the
record's CreatedDate and SystemModstamp are moved back by a fixed pseudo-random 0-8 h (from its
Id), so that, as in a real org, few records share one second; cases, tasks and events keep the
portfolio's own instants. Tests that need a tie make one (SalesforceSandbox.set_timestamp).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, date, datetime, time, timedelta

from connectors.sandbox.portfolio import Portfolio
from connectors.sandbox.salesforce_picklists import ValueSet, describe_values

_COMMON = {
    "Id": "id",
    "IsDeleted": "boolean",
    "CreatedDate": "datetime",
    "LastModifiedDate": "datetime",
    "SystemModstamp": "datetime",
}
_ORG_SCHEMA: ContextVar[dict[str, dict[str, object]] | None] = ContextVar("org", default=None)


class _Schema(dict):
    """`SCHEMA[obj]` answers with the fields of the org serving the current request (see
    `org_schema`): a sandbox may lack some fields, or have gained some through the Metadata API.
    Outside a request it is the default schema below."""

    def __getitem__(self, obj: str) -> dict[str, object]:
        org = _ORG_SCHEMA.get()
        return org[obj] if org is not None else super().__getitem__(obj)


@contextmanager
def org_schema(schema: dict[str, dict[str, object]]) -> Iterator[None]:
    token = _ORG_SCHEMA.set(schema)
    try:
        yield
    finally:
        _ORG_SCHEMA.reset(token)


# object -> field -> type; a reference is ("reference", target object, relationship name)
SCHEMA: dict[str, dict[str, object]] = {
    "User": {**_COMMON, "Name": "string", "Email": "email"},
    "Account": {
        **_COMMON,
        "Name": "string",
        "Website": "url",
        "OwnerId": ("reference", "User", "Owner"),
        "Type": "picklist",
        "NumberOfEmployees": "int",
        "AnnualRevenue": "currency",
        "Segment__c": "picklist",
        "ARR__c": "currency",
        "Health_Score__c": "double",
        "Health_Tier__c": "picklist",
        "Health_Trend_30d__c": "double",
        "Health_Drivers__c": "textarea",
        "Health_Updated_At__c": "datetime",
    },
    "Contract": {
        **_COMMON,
        "AccountId": ("reference", "Account", "Account"),
        "StartDate": "date",
        "EndDate": "date",
        "ContractTerm": "int",
        "Status": "picklist",
    },
    "Opportunity": {
        **_COMMON,
        "AccountId": ("reference", "Account", "Account"),
        "Name": "string",
        "Type": "picklist",
        "StageName": "picklist",
        "IsClosed": "boolean",
        "IsWon": "boolean",
        "CloseDate": "date",
        "Amount": "currency",
        "Prior_ARR__c": "currency",
    },
    "Case": {
        **_COMMON,
        "AccountId": ("reference", "Account", "Account"),
        "CaseNumber": "string",
        "Subject": "string",
        "Status": "picklist",
        "Priority": "picklist",
        "IsClosed": "boolean",
        "IsEscalated": "boolean",
        "ClosedDate": "datetime",
        "CSAT__c": "picklist",
    },
    "Task": {
        **_COMMON,
        "AccountId": ("reference", "Account", "Account"),
        "Subject": "string",
        "Status": "picklist",
        "IsClosed": "boolean",
        "TaskSubtype": "picklist",
        "ActivityDate": "date",
        "CompletedDateTime": "datetime",
        "Executive_Meeting__c": "boolean",
    },
    "Event": {
        **_COMMON,
        "AccountId": ("reference", "Account", "Account"),
        "Subject": "string",
        "StartDateTime": "datetime",
        "EndDateTime": "datetime",
        "ActivityDate": "date",
        "Executive_Meeting__c": "boolean",
    },
    "Contact": {
        **_COMMON,
        "AccountId": ("reference", "Account", "Account"),
        "FirstName": "string",
        "LastName": "string",
        "Email": "email",
        "Title": "string",
        "EmailBouncedDate": "datetime",
        "EmailBouncedReason": "string",
        "IsEmailBounced": "boolean",
        "Champion__c": "boolean",
        "Left_Company__c": "boolean",
        "Left_Date__c": "date",
    },
    "OpportunityContactRole": {
        **_COMMON,
        "OpportunityId": ("reference", "Opportunity", "Opportunity"),
        "ContactId": ("reference", "Contact", "Contact"),
        "Role": "picklist",
        "IsPrimary": "boolean",
    },
}
SCHEMA = _Schema(SCHEMA)  # SCHEMA[obj]: the fields of the org serving the request
HEALTH_FIELDS = tuple(f for f in SCHEMA["Account"] if f.startswith("Health_"))  # the score fields
CHILDREN = {
    "Account": {
        "contracts": "Contract",
        "cases": "Case",
        "contacts": "Contact",
        "opportunities": "Opportunity",
    }
}
PREFIX = {
    "User": "005",
    "Account": "001",
    "Contract": "800",
    "Opportunity": "006",
    "Case": "500",
    "Task": "00T",
    "Event": "00U",
    "Contact": "003",
    "OpportunityContactRole": "00K",
}
_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_PRIORITY = {"urgent": "Critical", "high": "High", "normal": "Medium", "low": "Low"}
_SEGMENT = {"enterprise": "Enterprise", "mid_market": "Mid-Market", "smb": "SMB"}
_EMPLOYEES = {"enterprise": 4000, "mid_market": 450, "smb": 40}


def sfid(obj: str, n: int) -> str:
    """An 18-character Salesforce-shaped id (15-char base + case-safe checksum)."""
    base = f"{PREFIX[obj]}FK{n:010d}"
    chunks = (base[k : k + 5] for k in (0, 5, 10))
    bits = (sum(1 << j for j, c in enumerate(chunk) if c.isupper()) for chunk in chunks)
    return base + "".join(_SUFFIX[b] for b in bits)


def sf_ts(dt: datetime) -> str:
    dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}+0000"


def _at(d: date, hour: int = 9) -> datetime:
    return datetime.combine(d, time(hour), tzinfo=UTC)


SPREAD_MS = 8 * 3600 * 1000
_SPREAD = ("User", "Account", "Contract", "Opportunity", "Contact")


def _spread(rid: str) -> timedelta:
    """A fixed pseudo-random 0-8 h for a record whose story time is only a day."""
    return timedelta(milliseconds=zlib.crc32(rid.encode()) % SPREAD_MS)


def seed(p: Portfolio) -> dict[str, dict[str, dict]]:
    """Portfolio -> {object: {id: record}}. About 1 s per 10,000 accounts' worth of rows."""
    db: dict[str, dict[str, dict]] = {obj: {} for obj in SCHEMA}
    horizon = datetime.combine(p.end, time(23, 59), tzinfo=UTC)
    counters = dict.fromkeys(SCHEMA, 0)

    def add(obj: str, created: datetime, modified: datetime, rid: str | None = None, **f) -> dict:
        if rid is None:
            counters[obj] += 1
            rid = sfid(obj, counters[obj])
        modified = min(max(modified, created), horizon)
        created = min(created, modified)  # nothing is created after the story's horizon
        if obj in _SPREAD:
            created, modified = created - _spread(rid), modified - _spread(rid)
        rec = {
            "Id": rid,
            "IsDeleted": False,
            "CreatedDate": sf_ts(created),
            "LastModifiedDate": sf_ts(modified),
            "SystemModstamp": sf_ts(modified),
            **f,
        }
        db[obj][rid] = rec
        return rec

    users: dict[str, str] = {}
    names = {}
    for a in p.accounts:
        if a.owner not in users:
            local = a.owner.split("@", 1)[0]
            created = _at(p.start - timedelta(days=400))
            users[a.owner] = add(
                "User", created, created, Name=local.replace(".", " ").title(), Email=a.owner
            )["Id"]
        names[a.external_id] = a.name
        created = _at(a.customer_since)
        add(
            "Account",
            created,
            created + timedelta(minutes=7),
            a.external_id,
            Name=a.name,
            Website=f"https://www.{a.domain}",
            OwnerId=users[a.owner],
            Type="Former Customer" if a.churned_on else "Customer - Direct",
            NumberOfEmployees=_EMPLOYEES[a.segment],
            AnnualRevenue=None,
            Segment__c=_SEGMENT[a.segment],
            ARR__c=a.arr,
        )
        months = (a.renewal_date.year - a.customer_since.year) * 12 + (
            a.renewal_date.month - a.customer_since.month
        )
        add(
            "Contract",
            created,
            created + timedelta(minutes=9),
            AccountId=a.external_id,
            StartDate=a.customer_since.isoformat(),
            EndDate=a.renewal_date.isoformat(),
            ContractTerm=months,
            Status="Activated",
        )
    for r in p.renewals:
        closed = r.outcome != "open"
        won = r.outcome in ("renewed", "expanded")
        stage = "Closed Won" if won else "Closed Lost" if closed else "Negotiation"
        changed = _at(r.close_date, 17) if closed else horizon - timedelta(hours=6)
        add(
            "Opportunity",
            _at(r.close_date - timedelta(days=90)),
            changed,
            r.external_id,
            Name=f"{names[r.account_id]} Renewal {r.close_date.year}",
            AccountId=r.account_id,
            Type="Renewal",
            StageName=stage,
            IsClosed=closed,
            IsWon=won,
            CloseDate=r.close_date.isoformat(),
            Amount=r.prior_amount if r.outcome == "churned" else r.amount,
            Prior_ARR__c=r.prior_amount,
        )
    for t in p.tickets:
        closed = t.solved_at is not None
        rating = {"good": "Good", "bad": "Bad"}.get(t.satisfaction or "")
        add(
            "Case",
            t.created_at,
            t.solved_at or t.created_at,
            AccountId=t.account_id,
            CaseNumber=f"{int(t.external_id):08d}",
            Subject=t.subject,
            Status="Closed"
            if closed
            else {"new": "New", "pending": "On Hold"}.get(t.status, "Working"),
            Priority=_PRIORITY[t.priority],
            IsClosed=closed,
            IsEscalated=t.escalated,
            ClosedDate=sf_ts(t.solved_at) if closed else None,
            CSAT__c=rating,
        )
    for v in p.touches:
        if v.kind == "meeting":
            add(
                "Event",
                v.occurred_at,
                v.occurred_at,
                "00U" + v.external_id[3:],
                AccountId=v.account_id,
                Subject=v.subject,
                StartDateTime=sf_ts(v.occurred_at),
                EndDateTime=sf_ts(v.occurred_at + timedelta(hours=1)),
                ActivityDate=v.occurred_at.date().isoformat(),
                Executive_Meeting__c=v.executive,
            )
        else:
            add(
                "Task",
                v.occurred_at,
                v.occurred_at,
                v.external_id,
                AccountId=v.account_id,
                Subject=v.subject,
                Status="Completed",
                IsClosed=True,
                TaskSubtype="Call" if v.kind == "call" else "Email",
                ActivityDate=v.occurred_at.date().isoformat(),
                CompletedDateTime=sf_ts(v.occurred_at),
                Executive_Meeting__c=v.executive,
            )
    starts = {a.external_id: a.customer_since for a in p.accounts}
    for c in p.contacts:
        first, _, last = c.name.partition(" ")
        created = _at(max(starts[c.account_id], p.start - timedelta(days=30)), 10)
        changed = _at(c.left_on, 11) if c.left_on else created
        rec = add(
            "Contact",
            created,
            changed,
            c.external_id,
            AccountId=c.account_id,
            FirstName=first,
            LastName=last,
            Email=c.email,
            Title=c.title,
            Champion__c=c.is_champion,
            Left_Company__c=c.left_on is not None,
            Left_Date__c=c.left_on.isoformat() if c.left_on else None,
            IsEmailBounced=c.left_on is not None,
        )
        if c.left_on:  # mail to them bounces from the day they left: the record's last change
            rec.update(EmailBouncedDate=rec["SystemModstamp"], EmailBouncedReason=BOUNCE)
    _primary_roles(p, db, add)
    return db


BOUNCE = "550 5.1.1 The email account that you tried to reach does not exist"


def _primary_roles(p: Portfolio, db: dict[str, dict[str, dict]], add) -> None:
    """Per account: the first champion is the primary contact role on its first opportunity, a
    replacement champion on each later one (created with the later of the two records)."""
    opps: dict[str, list[dict]] = {}
    for o in sorted(db["Opportunity"].values(), key=lambda o: (o["CloseDate"], o["Id"])):
        opps.setdefault(o["AccountId"], []).append(o)
    champions: dict[str, list[dict]] = {}
    for c in p.contacts:
        if c.is_champion:
            champions.setdefault(c.account_id, []).append(db["Contact"][c.external_id])
    for account, people in champions.items():
        mine = opps.get(account, [])
        for contact, targets in zip(people, (mine[:1], mine[1:]), strict=False):
            for opp in targets:
                created = max(opp["CreatedDate"], contact["CreatedDate"])
                at = datetime.strptime(created, "%Y-%m-%dT%H:%M:%S.%f%z")
                add(
                    "OpportunityContactRole",
                    at,
                    at,
                    OpportunityId=opp["Id"],
                    ContactId=contact["Id"],
                    Role="Decision Maker",
                    IsPrimary=True,
                )


def describe(obj: str, version: str, picklists: dict[tuple[str, str], ValueSet]) -> dict:
    fields = []
    for name, ftype in SCHEMA[obj].items():
        ref = ftype if isinstance(ftype, tuple) else None
        values = describe_values(picklists.get((obj, name))) if ftype == "picklist" else {}
        fields.append(
            {
                "name": name,
                "label": name.removesuffix("__c").replace("_", " "),
                "type": "reference" if ref else ftype,
                "custom": name.endswith("__c"),
                "nillable": name not in ("Id", "IsDeleted", "Name"),
                "updateable": name not in _COMMON and name not in ("IsClosed", "IsWon"),
                "referenceTo": [ref[1]] if ref else [],
                "relationshipName": ref[2] if ref else None,
                **values,
            }
        )
    children = [
        {"childSObject": child, "field": "AccountId", "relationshipName": rel.title()}
        for rel, child in CHILDREN.get(obj, {}).items()
    ]
    return {
        "name": obj,
        "label": obj,
        "custom": False,
        "keyPrefix": PREFIX[obj],
        "queryable": True,
        "updateable": True,
        "fields": fields,
        "childRelationships": children,
        "urls": {"describe": f"/services/data/v{version}/sobjects/{obj}/describe"},
    }
