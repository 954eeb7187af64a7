"""PURE functions: HubSpot CRM v3 JSON objects -> healthbot records (or RecordError).

The wire shape of the objects and which property means what are in docs/connectors.md,
"HubSpot: what each property means"."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime

from health.records import (
    SEGMENTS,
    AccountRecord,
    AccountRef,
    ObservationRecord,
    OutcomeRecord,
    RecordError,
)

SOURCE = "hubspot"
LASTMOD = "hs_lastmodifieddate"
CONTACT_LASTMOD = "lastmodifieddate"
CHAMPION, LEFT, PRIMARY = "healthbot_champion", "healthbot_left_company", "associatedcompanyid"
SALESFORCE_ACCOUNT_ID = "salesforceaccountid"  # HubSpot's Salesforce integration sets it
COMPANY_PROPS = [
    "name",
    "domain",
    "hubspot_owner_id",
    "healthbot_segment",
    "numberofemployees",
    "healthbot_arr",
    "annualrevenue",
    "healthbot_renewal_date",
    "hs_lifecyclestage_customer_date",
    "notes_last_contacted",
    "healthbot_last_exec_meeting",
    SALESFORCE_ACCOUNT_ID,
    LASTMOD,
]
DEAL_PROPS = [
    "dealname",
    "pipeline",
    "dealstage",
    "dealtype",
    "amount",
    "closedate",
    "healthbot_prior_amount",
    "hs_is_closed",
    "hs_is_closed_won",
    LASTMOD,
]
TICKET_PROPS = [
    "hs_pipeline",
    "hs_pipeline_stage",
    "hs_ticket_priority",
    "createdate",
    "closed_date",
    LASTMOD,
]
CONTACT_PROPS = [CHAMPION, LEFT, PRIMARY, CONTACT_LASTMOD]
CONTACT_HISTORY = [LEFT, PRIMARY]
SEV1_PRIORITIES = frozenset({"URGENT"})
CLOSED_TICKET_STAGES = frozenset({"4", "closed"})  # "4" is the default pipeline's Closed
EXPANSION_DEAL_TYPES = frozenset({"expansion", "upsell", "upgrade"})
NEW_BUSINESS_DEAL_TYPES = frozenset({"newbusiness"})


class BadValue(ValueError):
    pass


def parse_datetime(value: str | None) -> datetime | None:
    """ISO-8601 or epoch-ms string -> aware UTC datetime; None when empty; ValueError if bad."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"not a string: {value!r}")
    if value.isdigit():
        return datetime.fromtimestamp(int(value) / 1000, UTC)
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def parse_date(value: str | None) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, str) and len(value) == 10 and value[4] == "-":
        return date.fromisoformat(value)
    parsed = parse_datetime(value)
    return parsed.date() if parsed else None


def _get(props: dict, name: str, parse):
    try:
        return parse(props.get(name))
    except (ValueError, TypeError, OverflowError) as exc:
        raise BadValue(f"unparsable {name}: {props.get(name)!r}") from exc


def _number(value: str | None) -> float | None:
    return None if value in (None, "") else float(value)


def segment_of(props: dict) -> str | None:
    raw = (props.get("healthbot_segment") or "").strip().lower().replace("-", "_")
    raw = raw.replace(" ", "_")
    if raw in SEGMENTS:
        return raw
    employees = _number(props.get("numberofemployees"))
    if employees is None:
        return None
    return "enterprise" if employees >= 1000 else "mid_market" if employees >= 100 else "smb"


_SFID_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_SFID = re.compile(r"[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?")


def salesforce_id(value: str | None) -> str | None:
    """A Salesforce record id as the Salesforce API returns it: 18 characters. A 15-character
    (case-sensitive) id gets its case-safe suffix, so it matches the Account's `Id`; anything
    that is not id-shaped is kept as given (stripped), empty -> None."""
    value = (value or "").strip()
    if not value:
        return None
    if not _SFID.fullmatch(value) or len(value) == 18:
        return value
    bits = (
        sum(1 << j for j, c in enumerate(value[k : k + 5]) if "A" <= c <= "Z") for k in (0, 5, 10)
    )
    return value + "".join(_SFID_SUFFIX[b] for b in bits)


def _id(obj: dict) -> str:
    oid = obj.get("id") if isinstance(obj, dict) else None
    if not isinstance(oid, str | int) or not str(oid).strip():
        raise BadValue("missing id")
    if not isinstance(obj.get("properties"), dict):
        raise BadValue("missing properties")
    return str(oid)


def _error(kind: str, obj: object, exc: BadValue) -> RecordError:
    oid = obj.get("id") if isinstance(obj, dict) else None
    return RecordError(SOURCE, f"{kind}:{oid if oid else '?'}", str(exc))


def company_records(
    obj: dict, owners: dict[str, str], *, deleted: bool = False
) -> tuple[AccountRecord, list[ObservationRecord]] | RecordError:
    """A company -> its AccountRecord (external_id = HubSpot company id) and engagement events."""
    try:
        cid = _id(obj)
        p = obj["properties"]
        _get(p, LASTMOD, parse_datetime)
        arr = _get(p, "healthbot_arr", _number)
        if arr is None:  # the standard property, where the custom one is missing or empty
            arr = _get(p, "annualrevenue", _number)
        _get(p, "numberofemployees", _number)
        owner_id = p.get("hubspot_owner_id") or None
        account = AccountRecord(
            source=SOURCE,
            external_id=cid,
            name=(p.get("name") or p.get("domain") or f"HubSpot company {cid}").strip(),
            domain=p.get("domain") or None,
            owner=owners.get(owner_id, owner_id) if owner_id else None,
            segment=segment_of(p),
            arr=arr,
            customer_since=_get(p, "hs_lifecyclestage_customer_date", parse_date),
            renewal_date=_get(p, "healthbot_renewal_date", parse_date),
            deleted=deleted,
            cross_ref=salesforce_id(p.get(SALESFORCE_ACCOUNT_ID)),
        )
        ref = AccountRef(crm_id=cid)
        events = []
        for prop, signal in (
            ("notes_last_contacted", "csm_touch"),
            ("healthbot_last_exec_meeting", "exec_meeting"),
        ):
            at = _get(p, prop, parse_datetime)
            if at is not None and not deleted:
                events.append(ObservationRecord(ref, signal, at, 1.0, SOURCE))
    except BadValue as exc:
        return _error("company", obj, exc)
    return account, events


def deal_outcomes(
    obj: dict, company_ids: Iterable[str], *, renewal_pipeline: str | None = None
) -> list[OutcomeRecord] | RecordError:
    """A closed renewal deal -> one outcome per associated company; open deals -> []."""
    try:
        did = _id(obj)
        p = obj["properties"]
        if renewal_pipeline is not None and p.get("pipeline") != renewal_pipeline:
            return []
        if (p.get("dealtype") or "").lower() in NEW_BUSINESS_DEAL_TYPES:
            return []
        stage = (p.get("dealstage") or "").lower()
        won = stage == "closedwon" or p.get("hs_is_closed_won") == "true"
        lost = stage == "closedlost" or (p.get("hs_is_closed") == "true" and not won)
        if not (won or lost):
            return []
        closed = _get(p, "closedate", parse_datetime)
        if closed is None:
            raise BadValue("closed deal without closedate")
        amount = _get(p, "amount", _number)
        prior = _get(p, "healthbot_prior_amount", _number)
        companies = sorted(set(company_ids))
        if not companies:
            raise BadValue("deal has no associated company")
    except BadValue as exc:
        return _error("deal", obj, exc)
    if won:
        kind = (
            "expanded" if (p.get("dealtype") or "").lower() in EXPANSION_DEAL_TYPES else ("renewed")
        )
        change = amount - prior if amount is not None and prior is not None else None
    else:
        kind = "churned"
        lost_arr = amount if amount is not None else prior
        change = -lost_arr if lost_arr is not None else None
    return [
        OutcomeRecord(
            AccountRef(crm_id=c), kind, closed.date(), SOURCE, arr_change=change, external_id=did
        )
        for c in companies
    ]


@dataclass(frozen=True, slots=True)
class TicketState:
    id: str
    created_at: datetime
    modified_at: datetime
    priority: str
    open: bool


def ticket_state(
    obj: dict, *, closed_stages: frozenset[str] = CLOSED_TICKET_STAGES
) -> TicketState | RecordError:
    try:
        tid = _id(obj)
        p = obj["properties"]
        created = _get(p, "createdate", parse_datetime)
        modified = _get(p, LASTMOD, parse_datetime)
        closed_at = _get(p, "closed_date", parse_datetime)
        if created is None or modified is None:
            raise BadValue("missing createdate" if created is None else f"missing {LASTMOD}")
    except BadValue as exc:
        return _error("ticket", obj, exc)
    stage = p.get("hs_pipeline_stage")
    is_open = stage not in closed_stages if stage else closed_at is None
    return TicketState(tid, created, modified, (p.get("hs_ticket_priority") or "").upper(), is_open)


def sev1_observations(
    ticket: TicketState, company_ids: Iterable[str], *, sev1: frozenset[str] = SEV1_PRIORITIES
) -> list[ObservationRecord]:
    if ticket.priority not in sev1:
        return []
    return [
        ObservationRecord(AccountRef(crm_id=c), "sev1_ticket", ticket.created_at, 1.0, SOURCE)
        for c in sorted(set(company_ids))
    ]


def open_tickets_observation(
    company_id: str, tickets: Iterable[TicketState], *, at: datetime | None = None
) -> ObservationRecord | None:
    """The company's open-ticket count, observed at its newest ticket modification, or at `at`
    (a ticket's deletion) when that is later. No tickets and no `at` -> None."""
    tickets = list(tickets)
    stamps = [t.modified_at for t in tickets] + ([at] if at is not None else [])
    if not stamps:
        return None
    at = max(stamps)
    count = sum(1 for t in tickets if t.open)
    return ObservationRecord(
        AccountRef(crm_id=company_id), "open_tickets", at, float(count), SOURCE
    )


def owner_emails(owners: Iterable[dict]) -> dict[str, str]:
    """Owners API results -> {owner id: email} (owners without an email are left out)."""
    return {str(o["id"]): o["email"] for o in owners if o.get("id") and o.get("email")}


def is_true(value: object) -> bool:
    return str(value or "").strip().lower() in ("true", "1", "yes")


def _at_companies(state: dict[str, str]) -> set[str]:
    return set() if is_true(state[LEFT]) or not state[PRIMARY] else {state[PRIMARY]}


def champion_departures(
    obj: dict, associated: Iterable[str] = ()
) -> list[ObservationRecord] | RecordError:
    """A champion contact (read with the histories of healthbot_left_company and
    associatedcompanyid) -> a champion_left event per departure; non-champions -> [].

    The contact is *at* its primary company (associatedcompanyid) while not flagged as left.
    Each change of those two properties that ends its being at a company (the flag turns
    true, or the primary company changes or is cleared) is a departure from that company,
    observed at the timestamp of that property version; when the flag turns true, the
    companies it is still associated with (`associated`: the current v4 associations) are left
    too. The oldest versions are the starting state, never a departure. Later edits add
    versions but never move these, so rereading a contact re-derives the same events.
    Without histories, the current values count as set at the last modification.
    """
    try:
        _id(obj)
        p = obj["properties"]
        if not is_true(p.get(CHAMPION)):
            return []
        history = obj.get("propertiesWithHistory")
        changes: dict[datetime, dict[str, str]] = {}
        for prop in (LEFT, PRIMARY):
            versions = (history or {}).get(prop)
            if history is None and p.get(prop) not in (None, ""):
                versions = [{"value": p[prop], "timestamp": p.get(CONTACT_LASTMOD)}]
            for v in versions or ():
                if not isinstance(v, dict):
                    raise BadValue(f"unparsable {prop} history: {v!r}")
                at = _get(v, "timestamp", parse_datetime)
                if at is None:
                    raise BadValue(f"{prop} version without timestamp")
                changes.setdefault(at, {})[prop] = str(v.get("value") or "")
    except BadValue as exc:
        return _error("contact", obj, exc)
    # without histories the contact was at its current primary company before the change
    state = {LEFT: "", PRIMARY: "" if history is not None else str(p.get(PRIMARY) or "")}
    found: set[tuple[str, datetime]] = set()
    for n, at in enumerate(sorted(changes)):
        before, was_left = _at_companies(state), is_true(state[LEFT])
        state.update(changes[at])
        if n == 0 and history is not None:
            continue
        gone = before - _at_companies(state)
        if not was_left and is_true(state[LEFT]):
            gone |= set(associated)
        found |= {(c, at) for c in gone}
    return [
        ObservationRecord(AccountRef(crm_id=c), "champion_left", at, 1.0, SOURCE)
        for c, at in sorted(found, key=lambda f: (f[1], f[0]))
    ]


def archived_champion_departures(
    obj: dict, associated: Iterable[str] = ()
) -> list[ObservationRecord] | RecordError:
    """A champion deleted while still at its companies -> champion_left at archivedAt for its
    primary company and the companies it was associated with. One already flagged as left
    was reported when the flag was set; non-champions -> []."""
    try:
        _id(obj)
        p = obj["properties"]
        if not is_true(p.get(CHAMPION)) or is_true(p.get(LEFT)):
            return []
        at = _get(obj, "archivedAt", parse_datetime)
        if at is None:
            raise BadValue("missing archivedAt")
    except BadValue as exc:
        return _error("contact", obj, exc)
    companies = set(associated) | ({str(p[PRIMARY])} if p.get(PRIMARY) else set())
    return [
        ObservationRecord(AccountRef(crm_id=c), "champion_left", at, 1.0, SOURCE)
        for c in sorted(companies)
    ]


def associated_ids(obj: dict, to_type: str) -> list[str]:
    """Ids under a v3 object's `associations.<to_type>.results` (list/get with associations=)."""
    found = ((obj.get("associations") or {}).get(to_type) or {}).get("results") or []
    return [str(a["id"]) for a in found if isinstance(a, dict) and a.get("id")]
