"""Stripe objects (API JSON as dicts) -> healthbot records. Pure: no I/O, no clock (`today` is
passed in).

- customer -> AccountRecord(source "stripe", external_id = customer id, cross_ref = the CRM
  account id in its metadata under STRIPE_ACCOUNT_METADATA_KEY, domain = its email's domain,
  arr = its live subscriptions' ARR). These records only attach to accounts the CRMs hold
  (`Batch.attach_only`): one matching none is recorded as a sync error.
- a failed charge -> a payment_failed event at the charge's creation.
- invoices -> payment_days_late: days the oldest unpaid finalized invoice is past its due
  date, a point at the start of each overdue episode and weekly while it lasts, 0 the day it
  is settled, and a snapshot for `today` (0 when none is overdue). Void and draft invoices do not
  count; an invoice charged automatically is due when it is finalized.
Signals name the customer by its id (AccountRef(crm_id=customer id)): the stored customer
record links it to its account.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from health.records import AccountRecord, AccountRef, ObservationRecord, RecordError

SOURCE = "stripe"
LIVE = frozenset({"active", "past_due", "trialing", "unpaid"})  # subscriptions that bill
PER_YEAR = {"day": 365.0, "week": 52.0, "month": 12.0, "year": 1.0}
_DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Due:
    """One finalized invoice as the days-late signal needs it."""

    customer: str
    due: date
    paid: date | None  # None: still open (or uncollectible)


class Malformed(ValueError):
    pass


def _day(ts: object, name: str) -> date | None:
    if ts is None:
        return None
    if isinstance(ts, bool) or not isinstance(ts, int):
        raise Malformed(f"{name} is not a unix time: {ts!r}")
    return datetime.fromtimestamp(ts, UTC).date()


def midnight(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


def email_domain(email: object) -> str | None:
    if not isinstance(email, str) or "@" not in email:
        return None
    return email.rsplit("@", 1)[1].strip().lower() or None


def subscription_arr(sub: dict) -> float:
    """ARR of one subscription: every item's price x quantity, per year (0 unless it bills)."""
    if sub.get("status") not in LIVE:
        return 0.0
    total = 0.0
    for item in (sub.get("items") or {}).get("data") or []:
        price = item.get("price") or {}
        rec = price.get("recurring") or {}
        per = PER_YEAR.get(rec.get("interval", ""), 0.0) / max(
            1, int(rec.get("interval_count") or 1)
        )
        cents = price.get("unit_amount")
        if cents is None:  # a sub-cent price carries only the decimal string
            cents = float(price.get("unit_amount_decimal") or 0)
        total += cents * int(item.get("quantity") or 1) * per / 100
    return round(total, 2)


def customer_record(
    cus: dict, arr: float | None, metadata_key: str, *, deleted: bool = False
) -> AccountRecord | RecordError:
    cid = cus.get("id")
    if not isinstance(cid, str) or not cid:
        return RecordError(SOURCE, "customer:?", "missing id")
    ref = (cus.get("metadata") or {}).get(metadata_key)
    name = cus.get("name") or cus.get("email") or cid
    return AccountRecord(
        source=SOURCE,
        external_id=cid,
        name=str(name),
        domain=email_domain(cus.get("email")),
        arr=arr or None,
        cross_ref=str(ref).strip() if ref else None,
        deleted=deleted or cus.get("deleted") is True,
    )


def failed_payment(charge: dict) -> ObservationRecord | RecordError | None:
    if charge.get("status") != "failed":
        return None
    try:
        at = _day(charge.get("created"), "created")
        customer = charge.get("customer")
        if at is None or not isinstance(customer, str):
            raise Malformed("a failed charge without customer or created")
    except Malformed as exc:
        return RecordError(SOURCE, f"charge:{charge.get('id') or '?'}", str(exc))
    when = datetime.fromtimestamp(charge["created"], UTC)
    return ObservationRecord(AccountRef(crm_id=customer), "payment_failed", when, 1.0, SOURCE)


def invoice_due(inv: dict) -> Due | RecordError | None:
    """A finalized invoice's due day and payment day (None for drafts and void ones)."""
    status = inv.get("status")
    if status not in ("open", "paid", "uncollectible"):
        return None
    try:
        moves = inv.get("status_transitions") or {}
        due = _day(inv.get("due_date"), "due_date") or _day(
            moves.get("finalized_at"), "finalized_at"
        )
        due = due or _day(inv.get("created"), "created")
        paid = _day(moves.get("paid_at"), "paid_at") if status == "paid" else None
        if due is None or not isinstance(inv.get("customer"), str):
            raise Malformed("an invoice without customer or due date")
    except Malformed as exc:
        return RecordError(SOURCE, f"invoice:{inv.get('id') or '?'}", str(exc))
    return Due(inv["customer"], due, paid)


def late_on(dues: Iterable[Due], day: date) -> int:
    """Days the oldest invoice unpaid on `day` is past due on `day` (0: none is)."""
    late = [day - d.due for d in dues if d.due < day and (d.paid is None or d.paid > day)]
    return max(late).days if late else 0


def days_late_series(
    dues: Iterable[Due], today: date, *, snapshot: bool = True
) -> Iterator[tuple[date, int]]:
    """(day, days late) over the customer's history: weekly within each overdue episode, 0 the
    day it ends, and (`snapshot`) `today`'s value (0 when nothing is overdue): the point later
    runs refresh."""
    dues = list(dues)
    spans = [(d.due + _DAY, d.paid or today + _DAY, d.due) for d in dues]
    spans = [s for s in spans if s[0] < s[1]]
    if not spans:
        if snapshot and dues:
            yield today, 0
        return
    d, stop, episode, last = min(s[0] for s in spans), max(s[1] for s in spans), None, None
    while d <= stop:
        open_dues = [due for s, e, due in spans if s <= d < e]
        if open_dues:
            episode = episode or d
            if (d - episode).days % 7 == 0 and d <= today:
                last = d
                yield d, (d - min(open_dues)).days
        elif episode is not None:
            episode = None
            if d <= today:
                last = d
                yield d, 0
        d += _DAY
    if snapshot and last != today:
        yield today, late_on(dues, today)


def days_late_observations(customer: str, points: Iterable[tuple[date, int]]):
    ref = AccountRef(crm_id=customer)
    return [
        ObservationRecord(ref, "payment_days_late", midnight(d), float(v), SOURCE)
        for d, v in points
    ]
