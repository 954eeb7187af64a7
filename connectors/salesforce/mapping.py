"""Salesforce records (REST query JSON) -> healthbot records. Pure: no I/O, no clock.

Which field holds ARR, segment, the champion flag etc. comes from a `FieldMapping`
(default_mapping.yaml, overridable with SALESFORCE_MAPPING). Each mapper returns records, or a
`RecordError` for a malformed vendor record (missing id, wrong type, unparsable date).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import yaml

from health.records import AccountRecord, AccountRef, ObservationRecord, OutcomeRecord, RecordError

SOURCE = "salesforce"
SEGMENT_NAMES = ("enterprise", "mid_market", "smb")
# contact.champion entry meaning "the primary contact role on an opportunity" (no Contact field)
PRIMARY_ROLE = "OpportunityContactRole.IsPrimary"


class MappingError(ValueError):
    """The mapping file itself is wrong (not the org)."""


@dataclass(frozen=True)
class FieldMapping:
    path: str = "default_mapping.yaml"
    explicit: bool = False  # the admin's own file (SALESFORCE_MAPPING): all it names must exist
    account: dict[str, Any] = field(default_factory=dict)  # name/website/owner/employees
    arr_fields: tuple[str, ...] = ()  # tried in order: the first with a value is the ARR
    segment_fields: tuple[str, ...] = ()
    segment_values: dict[str, str] = field(default_factory=dict)
    employee_bands: tuple[tuple[int, str], ...] = ()
    active_statuses: tuple[str, ...] = ("Activated",)
    renewal_types: tuple[str, ...] = ("Renewal",)
    opp_amount: str | None = "Amount"
    opp_prior_amount: str | None = None
    expansion_min_growth: float = 0.08
    case_priority: str | None = "Priority"
    sev1_values: tuple[str, ...] = ()
    case_escalated: str | None = "IsEscalated"
    case_satisfaction: str | None = None
    csat_good: tuple[str, ...] = ()
    csat_bad: tuple[str, ...] = ()
    activity_executive: str | None = None
    # tried in order: the first the org has marks champions (PRIMARY_ROLE: primary contact roles)
    contact_champion: tuple[str, ...] = ("Champion__c",)
    contact_left: tuple[str, ...] = ()  # the first with a value: a checked box or a date = left
    contact_left_date: tuple[str, ...] = ()  # the first with a value (a date or datetime)

    def mapped_fields(self) -> dict[str, list[str]]:
        """Object -> fields named by the mapping (what the describe check reports by name)."""
        acc = [v for v in self.account.values() if v] + [*self.arr_fields, *self.segment_fields]
        return {
            "Account": acc,
            "Opportunity": [f for f in (self.opp_amount, self.opp_prior_amount) if f],
            "Case": [
                f for f in (self.case_priority, self.case_escalated, self.case_satisfaction) if f
            ],
            "Task": [self.activity_executive] if self.activity_executive else [],
            "Event": [self.activity_executive] if self.activity_executive else [],
            "Contact": [f for f in self.contact_champion if f != PRIMARY_ROLE]
            + [*self.contact_left, *self.contact_left_date],
        }

    @property
    def champion(self) -> str | None:
        """What marks a champion: a Contact checkbox, PRIMARY_ROLE, or None (not read)."""
        return self.contact_champion[0] if self.contact_champion else None


def _strs(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise MappingError(f"{where}: expected a field name or a list of names, got {value!r}")


def mapping_from_dict(data: dict, path: str, *, explicit: bool = False) -> FieldMapping:
    """Validate the YAML structure (not the org: that is the describe check at start-up)."""
    if not isinstance(data, dict):
        raise MappingError(f"{path}: expected a mapping at the top level")
    known = {"account", "contract", "opportunity", "case", "activity", "contact"}
    if unknown := set(data) - known:
        raise MappingError(f"{path}: unknown section(s) {sorted(unknown)}; known: {sorted(known)}")
    acc = dict(data.get("account") or {})
    opp, case = data.get("opportunity") or {}, data.get("case") or {}
    contact, activity = data.get("contact") or {}, data.get("activity") or {}
    seg_values = {
        str(k).lower(): str(v) for k, v in (acc.pop("segment_values", None) or {}).items()
    }
    bands = tuple((int(n), str(s)) for n, s in acc.pop("employee_bands", None) or ())
    for seg in [*seg_values.values(), *(s for _, s in bands)]:
        if seg not in SEGMENT_NAMES:
            raise MappingError(f"{path}: account segment {seg!r} is not one of {SEGMENT_NAMES}")
    segment_fields = _strs(acc.pop("segment", None), f"{path}: account.segment")
    arr_fields = _strs(acc.pop("arr", None), f"{path}: account.arr")
    for key in ("name", "website", "owner", "employees"):
        acc.setdefault(key, None)
    if unknown := set(acc) - {"name", "website", "owner", "employees"}:
        raise MappingError(f"{path}: unknown account key(s) {sorted(unknown)}")
    if not acc["name"]:
        raise MappingError(f"{path}: account.name is required")
    return FieldMapping(
        path=path,
        explicit=explicit,
        account=acc,
        arr_fields=arr_fields,
        segment_fields=segment_fields,
        segment_values=seg_values,
        employee_bands=tuple(sorted(bands, reverse=True)),
        active_statuses=_strs((data.get("contract") or {}).get("active_statuses"), path),
        renewal_types=_strs(opp.get("renewal_types", "Renewal"), path),
        opp_amount=opp.get("amount") or "Amount",
        opp_prior_amount=opp.get("prior_amount"),
        expansion_min_growth=float(opp.get("expansion_min_growth", 0.08)),
        case_priority=case.get("priority"),
        sev1_values=_strs(case.get("sev1_values"), path),
        case_escalated=case.get("escalated"),
        case_satisfaction=case.get("satisfaction"),
        csat_good=tuple(v.lower() for v in _strs(case.get("satisfaction_good"), path)),
        csat_bad=tuple(v.lower() for v in _strs(case.get("satisfaction_bad"), path)),
        activity_executive=activity.get("executive"),
        contact_champion=_strs(contact.get("champion"), f"{path}: contact.champion"),
        contact_left=_strs(contact.get("left"), f"{path}: contact.left"),
        contact_left_date=_strs(contact.get("left_date"), f"{path}: contact.left_date"),
    )


def mapping_from_yaml(text: str, path: str, *, explicit: bool = False) -> FieldMapping:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise MappingError(f"{path}: not valid YAML: {exc}") from exc
    return mapping_from_dict(data, path, explicit=explicit)


# --- values -------------------------------------------------------------------------------


class Malformed(ValueError):
    pass


def get_path(rec: dict, path: str) -> Any:
    """`Owner.Email` -> rec["Owner"]["Email"] (None along the way -> None)."""
    value: Any = rec
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def parse_datetime(value: Any, name: str) -> datetime | None:
    """Salesforce's `2026-01-01T12:00:00.000+0000` (or Z / +00:00) -> aware UTC."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise Malformed(f"{name} is not a datetime: {value!r}")
    text = value.replace("Z", "+00:00")
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise Malformed(f"{name} is not a datetime: {value!r}") from None
    if dt.tzinfo is None:
        raise Malformed(f"{name} has no time zone: {value!r}")
    return dt.astimezone(UTC)


def parse_date(value: Any, name: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        raise Malformed(f"{name} is not a date: {value!r}") from None


def _number(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Malformed(f"{name} is not a number: {value!r}")
    return float(value)


def _require_id(rec: dict) -> str:
    rid = rec.get("Id")
    if not isinstance(rid, str) or not rid:
        raise Malformed("missing Id")
    return rid


def record_key(rec: dict) -> str:
    obj = (rec.get("attributes") or {}).get("type", "?")
    return f"{obj}:{rec.get('Id') or '?'}"


def cursor_of(rec: dict) -> tuple[str, str] | None:
    """(SystemModstamp as canonical UTC text, Id): the position of a record in the sync order."""
    try:
        ts = parse_datetime(rec.get("SystemModstamp"), "SystemModstamp")
        rid = _require_id(rec)
    except Malformed:
        return None
    return (format_ts(ts), rid) if ts else None


def format_ts(ts: datetime) -> str:
    """Canonical text that sorts like time: 2026-01-01T12:00:00.000Z."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def _midnight(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


def _error(rec: dict, exc: Exception) -> RecordError:
    return RecordError(source=SOURCE, key=record_key(rec), reason=str(exc))


# --- mappers ------------------------------------------------------------------------------


def segment_of(rec: dict, m: FieldMapping) -> str | None:
    for name in m.segment_fields:
        raw = get_path(rec, name)
        if isinstance(raw, str) and (seg := m.segment_values.get(raw.strip().lower())):
            return seg
    employees = get_path(rec, m.account["employees"]) if m.account["employees"] else None
    if isinstance(employees, int) and not isinstance(employees, bool):
        for floor, seg in m.employee_bands:
            if employees >= floor:
                return seg
    return None


def domain_of(website: Any) -> str | None:
    if not isinstance(website, str) or not website.strip():
        return None
    d = website.strip().lower().split("://", 1)[-1].split("/", 1)[0].split("?", 1)[0]
    return d.removeprefix("www.") or None


def account_record(rec: dict, m: FieldMapping) -> AccountRecord | RecordError:
    """An Account row (with its `Contracts` child rows) -> AccountRecord."""
    try:
        rid = _require_id(rec)
        name = get_path(rec, m.account["name"])
        if not isinstance(name, str) or not name.strip():
            raise Malformed(f"{m.account['name']} is empty")
        owner = get_path(rec, m.account["owner"]) if m.account["owner"] else None
        arr = next(
            (v for f in m.arr_fields if (v := _number(get_path(rec, f), f)) is not None), None
        )
        starts, ends = [], []
        for c in (rec.get("Contracts") or {}).get("records") or []:
            start, end = (
                parse_date(c.get("StartDate"), "StartDate"),
                parse_date(c.get("EndDate"), "EndDate"),
            )
            if start:
                starts.append(start)
            if end and c.get("Status") in m.active_statuses:
                ends.append(end)
        return AccountRecord(
            source=SOURCE,
            external_id=rid,
            name=name.strip(),
            domain=domain_of(get_path(rec, m.account["website"]) if m.account["website"] else None),
            owner=owner if isinstance(owner, str) and owner else None,
            segment=segment_of(rec, m),
            arr=arr,
            customer_since=min(starts) if starts else None,
            renewal_date=max(ends) if ends else None,
            deleted=bool(rec.get("IsDeleted")),
        )
    except Malformed as exc:
        return _error(rec, exc)


def outcome_record(rec: dict, m: FieldMapping) -> OutcomeRecord | None | RecordError:
    """A closed renewal Opportunity -> renewed / expanded / churned at CloseDate."""
    try:
        rid = _require_id(rec)
        if rec.get("Type") not in m.renewal_types or not rec.get("IsClosed"):
            return None
        account_id = rec.get("AccountId")
        if not account_id:
            return None
        closed = parse_date(rec.get("CloseDate"), "CloseDate")
        if closed is None:
            raise Malformed("CloseDate is empty")
        amount = _number(get_path(rec, m.opp_amount), m.opp_amount) if m.opp_amount else None
        prior = (
            _number(get_path(rec, m.opp_prior_amount), m.opp_prior_amount)
            if m.opp_prior_amount
            else None
        )
        if rec.get("IsWon"):
            grew = prior is not None and amount is not None and prior > 0
            kind = (
                "expanded" if grew and amount >= prior * (1 + m.expansion_min_growth) else "renewed"
            )
            change = amount - prior if amount is not None and prior is not None else None
        else:
            kind = "churned"
            lost = prior if prior is not None else amount
            change = -lost if lost is not None else None
        return OutcomeRecord(AccountRef(crm_id=account_id), kind, closed, SOURCE, change, rid)
    except Malformed as exc:
        return _error(rec, exc)


def case_observations(rec: dict, m: FieldMapping) -> list[ObservationRecord] | RecordError:
    """Events of one Case: sev1_ticket and escalation at CreatedDate, csat at ClosedDate.
    (The open_tickets snapshot is counted by the source with an aggregate query.)"""
    try:
        _require_id(rec)
        account_id = rec.get("AccountId")
        created = parse_datetime(rec.get("CreatedDate"), "CreatedDate")
        closed = parse_datetime(rec.get("ClosedDate"), "ClosedDate")
        if not account_id or rec.get("IsDeleted"):
            return []
        if created is None:
            raise Malformed("CreatedDate is empty")
        ref, out = AccountRef(crm_id=account_id), []
        if m.case_priority and get_path(rec, m.case_priority) in m.sev1_values:
            out.append(ObservationRecord(ref, "sev1_ticket", created, 1.0, SOURCE))
        if m.case_escalated and get_path(rec, m.case_escalated) is True:
            out.append(ObservationRecord(ref, "escalation", created, 1.0, SOURCE))
        rating = get_path(rec, m.case_satisfaction) if m.case_satisfaction else None
        if isinstance(rating, str) and closed is not None:
            value = {**dict.fromkeys(m.csat_good, 100.0), **dict.fromkeys(m.csat_bad, 0.0)}
            if (v := value.get(rating.strip().lower())) is not None:
                out.append(ObservationRecord(ref, "csat", closed, v, SOURCE))
        return out
    except Malformed as exc:
        return _error(rec, exc)


def activity_observations(rec: dict, m: FieldMapping) -> list[ObservationRecord] | RecordError:
    """A completed Task or an Event -> csm_touch (+ exec_meeting when flagged executive).

    When: Event.StartDateTime; Task.CompletedDateTime, else ActivityDate, else CreatedDate."""
    try:
        _require_id(rec)
        account_id = rec.get("AccountId")
        if not account_id:
            return []
        at = parse_datetime(rec.get("StartDateTime"), "StartDateTime") or parse_datetime(
            rec.get("CompletedDateTime"), "CompletedDateTime"
        )
        if at is None and (day := parse_date(rec.get("ActivityDate"), "ActivityDate")):
            at = _midnight(day)
        at = at or parse_datetime(rec.get("CreatedDate"), "CreatedDate")
        if at is None:
            raise Malformed("no activity date")
        ref = AccountRef(crm_id=account_id)
        out = [ObservationRecord(ref, "csm_touch", at, 1.0, SOURCE)]
        if m.activity_executive and get_path(rec, m.activity_executive) is True:
            out.append(ObservationRecord(ref, "exec_meeting", at, 1.0, SOURCE))
        return out
    except Malformed as exc:
        return _error(rec, exc)


def _first_value(rec: dict, fields: tuple[str, ...]) -> tuple[str | None, Any]:
    """(field, value) of the first of `fields` with a value in `rec` (None, None: none has)."""
    return next(((f, v) for f in fields if (v := get_path(rec, f)) is not None), (None, None))


def _moment(value: Any, name: str) -> datetime | None:
    """A datetime field's value, or a date field's at midnight UTC."""
    if isinstance(value, str) and "T" in value:
        return parse_datetime(value, name)
    day = parse_date(value, name)
    return _midnight(day) if day else None


def contact_observations(rec: dict, m: FieldMapping) -> list[ObservationRecord] | RecordError:
    """A champion who left (checked box or a date in the first `left` field with a value, e.g.
    EmailBouncedDate) or was deleted -> champion_left at the left date, else SystemModstamp.
    With PRIMARY_ROLE every Contact passed in is a champion: the query selected them."""
    try:
        _require_id(rec)
        account_id = rec.get("AccountId")
        flag = m.champion
        if not account_id or flag is None:
            return []
        if flag != PRIMARY_ROLE and get_path(rec, flag) is not True:
            return []
        mark = _first_value(rec, m.contact_left)[1]
        if not (rec.get("IsDeleted") is True or mark is True or isinstance(mark, str) and mark):
            return []
        name, when = _first_value(rec, m.contact_left_date)
        at = _moment(when, str(name)) or parse_datetime(rec.get("SystemModstamp"), "SystemModstamp")
        if at is None:
            raise Malformed("no date for the departure")
        return [ObservationRecord(AccountRef(crm_id=account_id), "champion_left", at, 1.0, SOURCE)]
    except Malformed as exc:
        return _error(rec, exc)


def open_ticket_observation(account_id: str, count: int, at: datetime) -> ObservationRecord:
    return ObservationRecord(
        AccountRef(crm_id=account_id), "open_tickets", at, float(count), SOURCE
    )
