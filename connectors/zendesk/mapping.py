"""Pure mapping of Zendesk payloads (tickets, organizations, metric sets) to our records.

Signals (all from ticket state, stamped with ticket timestamps, never the clock):
  sev1_ticket  1 at `created_at` for a ticket with priority "urgent"
  sev2_ticket  1 at `created_at` for a ticket with priority "high"
  escalation   1 at `created_at` for a ticket tagged "escalated" / "escalation"
  csat         100 (good) or 0 (bad) at the ticket's solve time (metric set `solved_at`,
               else `updated_at`) for a rated ticket; "offered"/"unoffered" are no rating
  open_tickets snapshot count of an organization's open tickets (new/open/pending/hold),
               built by the source from the ticket stream (see source.py)
  oldest_open_ticket_days  snapshot beside it: age in days of the oldest open ticket
Deleted tickets (status "deleted") yield nothing and leave the open count.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from health.records import AccountRef, ObservationRecord, RecordError

SOURCE = "zendesk"
OPEN_STATUSES = frozenset({"new", "open", "pending", "hold"})
CLOSED_STATUSES = frozenset({"solved", "closed"})
DELETED = "deleted"
ESCALATION_TAGS = frozenset({"escalated", "escalation"})
CSAT = {"good": 100.0, "bad": 0.0}
SEVERITY = {"urgent": "sev1_ticket", "high": "sev2_ticket"}


@dataclass(frozen=True, slots=True)
class TicketState:
    ticket_id: int
    org_id: int | None
    status: str
    priority: str | None
    created_at: datetime
    updated_at: datetime
    solved_at: datetime | None
    satisfaction: str | None  # good | bad | None
    escalated: bool

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def deleted(self) -> bool:
        return self.status == DELETED


def parse_time(value: Any) -> datetime:
    """Zendesk ISO 8601 (`2026-07-08T09:29:00Z`) -> aware UTC; ValueError otherwise."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"not a timestamp: {value!r}")
    dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        raise ValueError(f"timestamp without a time zone: {value!r}")
    return dt.astimezone(UTC)


def parse_ticket(ticket: Any, metric_set: dict | None = None) -> TicketState | RecordError:
    """A ticket dict (+ its side-loaded metric set) -> TicketState, or why it is unusable."""
    if not isinstance(ticket, dict):
        return RecordError(SOURCE, "ticket:?", f"ticket is not an object: {ticket!r:.80}")
    raw_id = ticket.get("id")
    if not isinstance(raw_id, int) or isinstance(raw_id, bool):
        return RecordError(SOURCE, "ticket:?", f"ticket without an integer id: {raw_id!r:.40}")
    key = f"ticket:{raw_id}"
    status = ticket.get("status")
    if status not in OPEN_STATUSES | CLOSED_STATUSES | {DELETED}:
        return RecordError(SOURCE, key, f"unknown status {status!r}")
    org_id = ticket.get("organization_id")
    if org_id is not None and (not isinstance(org_id, int) or isinstance(org_id, bool)):
        return RecordError(SOURCE, key, f"organization_id is not an integer: {org_id!r:.40}")
    try:
        created_at = parse_time(ticket.get("created_at"))
    except ValueError as exc:
        return RecordError(SOURCE, key, f"unparsable created_at: {exc}")
    try:
        updated_at = parse_time(ticket.get("updated_at"))
    except ValueError as exc:
        return RecordError(SOURCE, key, f"unparsable updated_at: {exc}")
    solved_at = None
    if metric_set and metric_set.get("solved_at"):
        try:
            solved_at = parse_time(metric_set["solved_at"])
        except ValueError as exc:
            return RecordError(SOURCE, key, f"unparsable metric_set solved_at: {exc}")
    rating = ticket.get("satisfaction_rating")
    score = rating.get("score") if isinstance(rating, dict) else None
    tags = ticket.get("tags") or []
    if not isinstance(tags, list):
        return RecordError(SOURCE, key, f"tags is not a list: {tags!r:.40}")
    priority = ticket.get("priority")
    return TicketState(
        ticket_id=raw_id,
        org_id=org_id,
        status=status,
        priority=priority if isinstance(priority, str) else None,
        created_at=created_at,
        updated_at=updated_at,
        solved_at=solved_at,
        satisfaction=score if score in CSAT else None,
        escalated=bool(ESCALATION_TAGS & {str(t).lower() for t in tags}),
    )


def ticket_observations(t: TicketState, ref: AccountRef) -> list[ObservationRecord]:
    """Event signals of one ticket (open_tickets is the source's job)."""
    if t.deleted:
        return []
    out = []
    if t.priority in SEVERITY:
        out.append(ObservationRecord(ref, SEVERITY[t.priority], t.created_at, 1.0, SOURCE))
    if t.escalated:
        out.append(ObservationRecord(ref, "escalation", t.created_at, 1.0, SOURCE))
    if t.satisfaction is not None:
        at = t.solved_at or t.updated_at
        out.append(ObservationRecord(ref, "csat", at, CSAT[t.satisfaction], SOURCE))
    return out


def open_tickets(ref: AccountRef, count: int, at: datetime) -> ObservationRecord:
    return ObservationRecord(ref, "open_tickets", at, float(count), SOURCE)


def oldest_open(ref: AccountRef, days: float, at: datetime) -> ObservationRecord:
    return ObservationRecord(ref, "oldest_open_ticket_days", at, days, SOURCE)


def org_ref(org: dict | None, org_id: int) -> AccountRef:
    """By external_id (= the CRM account id), falling back to the first domain name.

    An organization with neither (or unknown to Zendesk) gets a ref no account has, so the
    store reports it as unmatched under `zendesk-org:<id>` instead of dropping it silently.
    """
    crm_id = domain = None
    if org:
        ext = org.get("external_id")
        if isinstance(ext, str | int) and not isinstance(ext, bool) and str(ext).strip():
            crm_id = str(ext).strip()
        domains = org.get("domain_names") or []
        if isinstance(domains, list):
            domain = next(
                (d.strip().lower() for d in domains if isinstance(d, str) and d.strip()), None
            )
    if crm_id is None and domain is None:
        return AccountRef(crm_id=f"zendesk-org:{org_id}")
    return AccountRef(crm_id=crm_id, domain=domain)
