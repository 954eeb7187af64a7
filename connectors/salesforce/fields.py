"""What the sync does without a field the org lacks: the default mapping degrades, an admin's
own mapping does not. Pure: the describe results come in, a narrower mapping and the notices
(`SwitchedOff`, one per missing field) or the fatal problems go out.

Fatal, whatever the mapping: a standard field every org has and the sync cannot work without
(Id, AccountId, SystemModstamp, Account.Name, ...), and, in an admin's own mapping file
(SALESFORCE_MAPPING), any field it names. Everything else the default mapping names is optional:
without it only the signals that read it are off, and the standard fallbacks (AnnualRevenue
after ARR__c, Type and employee bands after Segment__c, primary contact roles after Champion__c,
EmailBouncedDate after Left_Company__c and Left_Date__c) carry on. The fallback to primary
contact roles reads OpportunityContactRole (ContactId, IsPrimary, ...): described only when used.
"""

from __future__ import annotations

from dataclasses import replace

from connectors.salesforce.mapping import PRIMARY_ROLE, SOURCE, FieldMapping
from health.records import SwitchedOff

ROLE_FIELDS = ("Id", "ContactId", "IsPrimary", "IsDeleted", "SystemModstamp")  # PRIMARY_ROLE
EXEC = "the exec_meeting signal (Tasks and Events still count as CSM touches)"
# (object, mapping key) -> what is off without the field
EFFECTS: dict[tuple[str, str], str] = {
    ("Account", "account.website"): "account domains (no matching of billing, usage or help-desk "
    "records by domain)",
    ("Account", "account.owner"): "account owners (briefs and digests show no CSM)",
    ("Account", "account.employees"): "the employee-band segment fallback",
    ("Account", "account.arr"): "account ARR",
    ("Account", "account.segment"): "segment from this field (the other segment fields and the "
    "employee bands still apply)",
    ("Opportunity", "opportunity.amount"): "renewal ARR change",
    ("Opportunity", "opportunity.prior_amount"): "renewal ARR change and 'expanded' outcomes "
    "(a won renewal counts as renewed)",
    ("Case", "case.priority"): "the sev1_ticket signal",
    ("Case", "case.escalated"): "the escalation signal",
    ("Case", "case.satisfaction"): "the csat signal",
    ("Task", "activity.executive"): EXEC,
    ("Event", "activity.executive"): EXEC,
    ("Contact", "contact.champion"): "the champion_left signal (Contacts are not read)",
    ("OpportunityContactRole", "contact.champion"): "the champion_left signal (Contacts are not "
    "read)",
    ("Contact", "contact.left"): "champions marked as left (only deleted champions count)",
    ("Contact", "contact.left_date"): "departure dates (the Contact's SystemModstamp is used)",
}


def mapping_keys(m: FieldMapping) -> dict[tuple[str, str], str]:
    """(object, lower-case field) -> the mapping key naming it."""
    keys: dict[tuple[str, str], str] = {}
    for key, value in m.account.items():
        if value:
            keys[("Account", value.lower())] = f"account.{key}"
    for f in m.arr_fields:
        keys[("Account", f.lower())] = "account.arr"
    for f in m.segment_fields:
        keys[("Account", f.lower())] = "account.segment"
    named = {
        "Opportunity": {"opportunity.amount": m.opp_amount,
                        "opportunity.prior_amount": m.opp_prior_amount},
        "Case": {"case.priority": m.case_priority, "case.escalated": m.case_escalated,
                 "case.satisfaction": m.case_satisfaction},
        "Task": {"activity.executive": m.activity_executive},
        "Event": {"activity.executive": m.activity_executive},
    }  # fmt: skip
    for obj, fields in named.items():
        for key, f in fields.items():
            if f:
                keys[(obj, f.lower())] = key
    for key in ("contact.champion", "contact.left", "contact.left_date"):
        for f in getattr(m, key.replace(".", "_")):
            keys[("Contact", f.lower())] = key
    if PRIMARY_ROLE in m.contact_champion:
        for f in ROLE_FIELDS:
            keys[("OpportunityContactRole", f.lower())] = "contact.champion"
    return keys


def without(m: FieldMapping, obj: str, fld: str, key: str) -> FieldMapping:
    """The mapping with `obj.fld` (named by `key`) left out."""
    drop = lambda fields: tuple(f for f in fields if f.lower() != fld.lower())  # noqa: E731
    if key == "account.arr":
        return replace(m, arr_fields=drop(m.arr_fields))
    if key == "account.segment":
        return replace(m, segment_fields=drop(m.segment_fields))
    if key.startswith("contact."):
        # a Contact field leaves every contact list; a role field: no primary-role fallback
        gone = PRIMARY_ROLE.lower() if obj == "OpportunityContactRole" else fld.lower()
        lists = ("contact_champion", "contact_left", "contact_left_date")
        return replace(
            m, **{a: tuple(f for f in getattr(m, a) if f.lower() != gone) for a in lists}
        )
    if key.startswith("account."):
        return replace(m, account={**m.account, key.removeprefix("account."): None})
    attr = {
        "opportunity.amount": "opp_amount",
        "opportunity.prior_amount": "opp_prior_amount",
        "case.priority": "case_priority",
        "case.escalated": "case_escalated",
        "case.satisfaction": "case_satisfaction",
        "activity.executive": "activity_executive",
    }[key]
    return replace(m, **{attr: None})


def _effect(m: FieldMapping, obj: str, key: str) -> str:
    if key == "account.arr" and m.arr_fields:
        return f"ARR from this field (ARR is read from {', '.join(m.arr_fields)})"
    if key == "account.segment" and not (m.segment_fields or m.account.get("employees")):
        return "account segments (segment-specific tier thresholds do not apply)"
    if key == "contact.champion" and m.champion == PRIMARY_ROLE:
        return (
            "champions from this field (champions are the contacts that are the primary contact "
            "role on an opportunity: OpportunityContactRole.IsPrimary)"
        )
    if key == "contact.left" and m.contact_left:
        return (
            f"departures from this field (a champion with {', '.join(m.contact_left)} set, or "
            "deleted, counts as left)"
        )
    if key == "contact.left_date" and m.contact_left_date:
        return f"departure dates from this field ({', '.join(m.contact_left_date)} is used)"
    return EFFECTS[(obj, key)]


def degrade(
    m: FieldMapping, missing: list[tuple[str, str]]
) -> tuple[FieldMapping, list[SwitchedOff], list[str]]:
    """(object, field) pairs the org lacks -> (the mapping without the optional ones, one notice
    per optional field, the problems that must stop the sync)."""
    keys = mapping_keys(m)
    notices: list[SwitchedOff] = []
    problems: list[str] = []
    for obj, fld in missing:
        key = keys.get((obj, fld.lower()))
        if key is None or key == "account.name":
            problems.append(f"{obj}.{fld} (a standard field healthbot reads) is missing")
        elif m.explicit:
            problems.append(
                f"{obj}.{fld} (named by {key} in the Salesforce mapping {m.path}) is not a field "
                f"of {obj} in this org"
            )
        else:
            m = without(m, obj, fld, key)
            fix = (
                f"create it in Salesforce, or point {key} at a field the org has in a copy of "
                "the mapping (SALESFORCE_MAPPING)"
            )
            notices.append(SwitchedOff(SOURCE, f"{obj}.{fld}", _effect(m, obj, key), key, fix))
    return m, notices, problems
