"""The daily at-risk digest's data: each owner's accounts that need attention, ranked, and
the once-per-recipient-and-day claim that keeps a digest from going out twice."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta

from sqlalchemy import delete, select, update
from sqlmodel import Session

from health import customers
from health.briefs import AccountLine, account_line
from health.models import Account, DigestSent, SlackUser
from health.repo import upsert
from health.score_history import scores_as_of

FALLING = -10  # points in 30 days that put an account in the digest whatever its tier
RECHECK = timedelta(days=7)  # how long a cached Slack user (and its time zone) is trusted


def needing_attention(*, session: Session) -> dict[str, list[AccountLine]]:
    """Per owner email (lower-cased): accounts at risk, critical or falling 10+ points in 30
    days, ranked by ARR x risk (the ARR that stands to be lost first)."""
    latest = scores_as_of(session=session, ids=None, lo=None, hi=None)
    q = select(Account).where(customers.current(), Account.owner.is_not(None))
    out: dict[str, list[AccountLine]] = defaultdict(list)
    for a in session.exec(q).scalars():
        s = latest.get(a.id)
        if s is None:
            continue
        falling = s.trend_30d is not None and s.trend_30d <= FALLING
        if s.announced_tier in ("at_risk", "critical") or falling:
            out[a.owner.lower()].append(account_line(a, s))
    for lines in out.values():
        lines.sort(key=lambda x: -((x.arr or 0) * (100 - x.total)))
    return dict(out)


def cached_users(*, session: Session, emails, now: datetime) -> dict[str, SlackUser]:
    """The Slack users already looked up (and recent enough) for these emails."""
    q = select(SlackUser).where(SlackUser.email.in_(list(emails)))
    return {u.email: u for u in session.exec(q).scalars() if now - u.checked_at < RECHECK}


def remember_users(*, session: Session, found: dict[str, tuple[str | None, str]], now) -> None:
    rows = [
        {"email": e, "slack_user_id": uid, "tz": tz, "checked_at": now}
        for e, (uid, tz) in found.items()
    ]
    upsert(session, SlackUser, rows, keys=("email",), update=("slack_user_id", "tz", "checked_at"))


def taken(*, session: Session, recipient: str, day: date) -> bool:
    """Today's digest for `recipient` is sent or being sent (a cheap look before building it)."""
    q = select(DigestSent.recipient).where(DigestSent.recipient == recipient, DigestSent.day == day)
    return session.execute(q).first() is not None


def claim(*, session: Session, recipient: str, day: date, now: datetime) -> bool:
    """Take today's digest for `recipient`; False when it was taken already (sent, or being
    sent by another worker)."""
    got = upsert(
        session,
        DigestSent,
        [{"recipient": recipient, "day": day, "sent_at": now}],
        keys=("recipient", "day"),
        update=(),
    )
    return bool(got)


def sent(*, session: Session, recipient: str, day: date, channel: str, ts: str) -> None:
    session.execute(
        update(DigestSent)
        .where(DigestSent.recipient == recipient, DigestSent.day == day)
        .values(channel=channel, ts=ts)
    )


def release(*, session: Session, recipient: str, day: date) -> None:
    """The post failed: give the day back, so the next beat tick tries again."""
    session.execute(
        delete(DigestSent).where(DigestSent.recipient == recipient, DigestSent.day == day)
    )
