"""Who is still a customer. An account whose newest outcome by a day is a churn (no renewal or
expansion after it, and no customer_since after it: a win-back starts again) is a former
customer from the day after the churn: it is not scored any more, and it leaves every view of
the book (portfolio, a CSM's book, digests, reminders, playbooks). Its history, outcomes and
brief stay. A churn dated in the future (notice given, contract still running) changes
nothing until its day."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime

from sqlalchemy import ColumnElement, exists, func, or_, select
from sqlalchemy.orm import aliased
from sqlmodel import Session

from health.models import Account, Outcome
from health.repo import chunked

KEPT = ("renewed", "expanded")


def _lost(day: date | None):
    """(churn outcome alias, condition): a churn of the Account row dated before `day` (any
    day for None), with no renewal or expansion after it and no newer customer_since."""
    churn, later = aliased(Outcome), aliased(Outcome)
    again = later.account_id == churn.account_id
    again &= later.kind.in_(KEPT) & (later.occurred_on > churn.occurred_on)
    cond = (churn.account_id == Account.id) & (churn.kind == "churned") & ~exists().where(again)
    cond &= or_(Account.customer_since.is_(None), Account.customer_since <= churn.occurred_on)
    if day is not None:
        cond &= churn.occurred_on < day
    return churn, cond


def churned(day: date | None = None) -> ColumnElement[bool]:
    """SQL on Account: a former customer on `day` (default today, UTC)."""
    _churn, cond = _lost(day or datetime.now(UTC).date())
    return exists().where(cond)


def current(day: date | None = None) -> ColumnElement[bool]:
    """SQL on Account: live (not deleted or merged away) and a customer on `day`."""
    return Account.deleted_at.is_(None) & ~churned(day)


def former_among(session: Session, ids: Sequence[int], day: date) -> set[int]:
    """Which of `ids` were former customers on `day`: one query over the churn outcomes, not
    over the ids (a sync may hand over 100,000 of them)."""
    churn, cond = _lost(day)
    return set(session.scalars(select(churn.account_id).where(cond).distinct())) & set(ids)


def churn_days(session: Session, ids: Sequence[int]) -> dict[int, date]:
    """Per account of `ids` that churned for good (as far as is known now): the churn's day.
    Scores of the days after it are not kept."""
    churn, cond = _lost(None)
    out: dict[int, date] = {}
    for part in chunked(sorted(set(ids)), 5000):
        q = (
            select(Account.id, func.max(churn.occurred_on))
            .where(Account.id.in_(part), cond)
            .group_by(Account.id)
        )
        out.update({a: d for a, d in session.execute(q)})
    return out
