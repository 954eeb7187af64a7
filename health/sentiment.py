"""A CSM's sentiment: validated, stored with who and when, and fed to the score as the
`csm_sentiment` signal (capped by the model: it informs, never overrides); a departed champion
flagged here is a `champion_left` event like the CRM's."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlmodel import Session

from health import customers
from health.identity import records_of
from health.models import Account, Observation, ProcessedSlackEvent, SentimentEntry
from health.repo import upsert

SOURCE = "slack"
DIRECTIONS = ("improving", "steady", "declining")
FLAGS = {
    "champion_left": "The champion left",
    "exec_sponsor_engaged": "Executive sponsor engaged",
    "competitor": "A competitor is in play",
    "budget_risk": "Budget at risk",
}
NOTE_MAX = 2000


@dataclass(frozen=True)
class Sentiment:
    rating: int
    direction: str | None = None
    flags: tuple[str, ...] = ()
    note: str = ""


def may_log(email: str | None, *, owner: str | None, managers) -> bool:
    """Who may log sentiment for an account: its owner and the CS managers."""
    email = (email or "").strip().lower()
    return bool(email) and (
        email == (owner or "").lower() or email in {m.lower() for m in managers}
    )


def parse(rating: str | None, direction: str | None, flags, note: str | None):
    """(Sentiment, {}) or (None, {field: what is wrong}): the form's input, checked."""
    errors = {}
    if rating not in {"1", "2", "3", "4", "5"}:
        errors["rating"] = "Pick a rating from 1 (very worried) to 5 (very confident)."
    if direction is not None and direction not in DIRECTIONS:
        errors["direction"] = f"Direction is one of {', '.join(DIRECTIONS)}."
    unknown = [f for f in flags or () if f not in FLAGS]
    if unknown:
        errors["flags"] = f"Unknown flags: {', '.join(unknown)}."
    if len(note or "") > NOTE_MAX:
        errors["note"] = f"Keep the note under {NOTE_MAX} characters."
    if errors:
        return None, errors
    return Sentiment(int(rating), direction, tuple(flags or ()), (note or "").strip()), {}


def record_sentiment(
    *, session: Session, account_id: int, entry: Sentiment, author: str, now: datetime
) -> None:
    """Store the entry and its signals (on the account's leading record, source `slack`)."""
    account = session.get(Account, account_id)
    if account is None or account.deleted_at is not None:
        raise LookupError(f"account {account_id} no longer exists")
    session.add(
        SentimentEntry(
            account_id=account_id,
            rating=entry.rating,
            direction=entry.direction,
            flags=list(entry.flags),
            note=entry.note,
            author=author,
            created_at=now,
        )
    )
    records = records_of(session=session, account_ids=[account_id])[account_id]
    lead = next(
        (r for r in records if (r.source, r.external_id) == (account.source, account.external_id)),
        records[0],
    )
    signals = {"csm_sentiment": float(entry.rating)}
    if "champion_left" in entry.flags:
        signals["champion_left"] = 1.0
    rows = [
        {"account_id": account_id, "record_id": lead.id, "signal": sig, "observed_at": now,
         "value": value, "source": SOURCE}
        for sig, value in signals.items()
    ]  # fmt: skip
    upsert(session, Observation, rows, keys=("record_id", "signal", "observed_at", "source"),
           update=("value",))  # fmt: skip


def first_time(*, session: Session, event_id: str, now: datetime) -> bool:
    """Record an Events API event id; False when it was handled before (a Slack retry)."""
    got = upsert(session, ProcessedSlackEvent, [{"event_id": event_id, "received_at": now}],
                 keys=("event_id",), update=())  # fmt: skip
    return bool(got)


def stale_sentiment(*, session: Session, owner: str, days: int, now: datetime) -> list[str]:
    """Names of `owner`'s accounts whose newest sentiment is older than `days` (or none)."""
    return stale_by_owner(session=session, days=days, now=now, owner=owner).get(owner.lower(), [])


def stale_by_owner(
    *, session: Session, days: int, now: datetime, owner: str | None = None
) -> dict[str, list[str]]:
    """Per owner email (lower-cased; one owner, or all in one query): names of the accounts
    whose newest sentiment is older than `days`, or that have none."""
    newest = (
        select(SentimentEntry.account_id, func.max(SentimentEntry.created_at).label("at"))
        .group_by(SentimentEntry.account_id)
        .subquery()
    )
    q = (
        select(func.lower(Account.owner), Account.name, newest.c.at)
        .outerjoin(newest, newest.c.account_id == Account.id)
        .where(customers.current(now.date()), Account.owner.is_not(None))
        .order_by(Account.name)
    )
    if owner is not None:
        q = q.where(func.lower(Account.owner) == owner.lower())
    cutoff = now - timedelta(days=days)
    out: dict[str, list[str]] = {}
    for who, name, at in session.execute(q).all():
        if at is None or at < cutoff:
            out.setdefault(who, []).append(name)
    return out
