"""What a backtest reads: outcomes, and per outcome the newest score stored on or before its
lead day (within `MAX_SCORE_AGE` days), the CSM's newest sentiment rating as of that day,
and the score history of the churned accounts. A fixed number of statements per chunk of
outcomes, whatever the number of accounts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import Date, Integer, column, func, select, values
from sqlmodel import Session

from health.backtest import Case, report
from health.models import Account, Observation, Outcome, Score, UTCDateTime
from health.repo import chunked
from health.score_writes import day_end
from health.scoring.stats import LOOKBACK_DAYS

MAX_SCORE_AGE = 31  # a score older than this at the lead day does not stand for it
CHUNK = 2000
KINDS = ("renewed", "churned", "expanded")


@dataclass(frozen=True)
class OutcomeRow:
    id: int
    account_id: int
    kind: str
    occurred_on: date
    name: str
    segment: str | None
    owner: str | None
    lead_day: date


def outcomes(
    *,
    session: Session,
    lead_days: int,
    since: date | None = None,
    until: date | None = None,
    segment: str | None = None,
) -> list[OutcomeRow]:
    """Renewed, churned and expanded outcomes in [since, until] (their accounts' segment
    `segment`), oldest first; one per account, kind and day."""
    q = (
        select(
            Outcome.id,
            Outcome.account_id,
            Outcome.kind,
            Outcome.occurred_on,
            Account.name,
            Account.segment,
            Account.owner,
        )
        .join(Account, Account.id == Outcome.account_id)
        .where(Outcome.kind.in_(KINDS))
        .order_by(Outcome.occurred_on, Outcome.id)
    )
    if since:
        q = q.where(Outcome.occurred_on >= since)
    if until:
        q = q.where(Outcome.occurred_on <= until)
    if segment:
        q = q.where(Account.segment == segment)
    seen: dict[tuple, OutcomeRow] = {}  # a customer in two CRMs: one renewal, reported twice
    for row in session.execute(q):
        key = (row.account_id, row.kind, row.occurred_on)
        if key not in seen:
            seen[key] = OutcomeRow(*row, lead_day=row.occurred_on - timedelta(days=lead_days))
    return list(seen.values())


def _queries(rows: Sequence[OutcomeRow]):
    """The outcomes as a VALUES table (id, account, lead day, oldest usable score day)."""
    return values(
        column("oid", Integer),
        column("acc", Integer),
        column("day", Date),
        column("lo", Date),
        name="q",
    ).data([(r.id, r.account_id, r.lead_day, r.lead_day - timedelta(MAX_SCORE_AGE)) for r in rows])
    # a CTE: SQLite reads `WITH q(...) AS (VALUES ...)`, not VALUES with column aliases


def scores_at_lead(*, session: Session, rows: Sequence[OutcomeRow]) -> dict[int, Score]:
    """Outcome id -> the newest Score of its account with lo <= score_date <= lead day."""
    out: dict[int, Score] = {}
    for part in chunked(list(rows), CHUNK):
        q = _queries(part).cte("q")
        s2 = Score.__table__.alias("s2")  # type: ignore[attr-defined]
        newest = (
            select(func.max(s2.c.score_date))
            .where(
                s2.c.account_id == q.c.acc, s2.c.score_date <= q.c.day, s2.c.score_date >= q.c.lo
            )
            .scalar_subquery()
        )
        stmt = select(q.c.oid, Score).join(
            Score, (Score.account_id == q.c.acc) & (Score.score_date == newest)
        )
        out.update({oid: score for oid, score in session.execute(stmt)})
    return out


def sentiment_at_lead(*, session: Session, rows: Sequence[OutcomeRow]) -> dict[int, float]:
    """Outcome id -> the CSM's newest sentiment rating observed before its lead day ended
    (within the statistics' lookback)."""
    out: dict[int, float] = {}
    for part in chunked(list(rows), CHUNK):
        q = values(
            column("oid", Integer),
            column("acc", Integer),
            column("at", UTCDateTime()),
            column("lo", UTCDateTime()),
            name="q",
        ).data(
            [
                (r.id, r.account_id, end, end - timedelta(days=LOOKBACK_DAYS))
                for r in part
                for end in [day_end(r.lead_day)]
            ]
        )
        q = q.cte("q")
        o = Observation.__table__.c  # type: ignore[attr-defined]
        rating = (
            select(o.value)
            .where(
                o.account_id == q.c.acc,
                o.signal == "csm_sentiment",
                o.observed_at < q.c.at,
                o.observed_at >= q.c.lo,
            )
            .order_by(o.observed_at.desc(), o.value.desc())
            .limit(1)
            .scalar_subquery()
        )
        out.update({oid: v for oid, v in session.execute(select(q.c.oid, rating)) if v is not None})
    return out


def tier_history(
    *, session: Session, account_ids: Sequence[int], lo: date, hi: date
) -> dict[int, list[tuple[date, str]]]:
    """Per account, (score day, tier shown) of its scores in [lo, hi]."""
    out: dict[int, list[tuple[date, str]]] = {}
    for part in chunked(sorted(set(account_ids)), CHUNK):
        q = select(Score.account_id, Score.score_date, Score.announced_tier).where(
            Score.account_id.in_(list(part)), Score.score_date >= lo, Score.score_date <= hi
        )
        for acc, day, tier in session.execute(q):
            out.setdefault(acc, []).append((day, tier))
    return out


def backtest_cases(
    *,
    session: Session,
    lead_days: int,
    since: date | None = None,
    until: date | None = None,
    segment: str | None = None,
) -> tuple[list[Case], list[OutcomeRow], dict[int, list[tuple[date, str]]]]:
    """The cases (outcomes with a score at lead time), every outcome in range, and the
    churned accounts' tier history over the year before their churn."""
    rows = outcomes(session=session, lead_days=lead_days, since=since, until=until, segment=segment)
    scores = scores_at_lead(session=session, rows=rows)
    ratings = sentiment_at_lead(session=session, rows=rows)
    cases = [case(r, scores[r.id], ratings.get(r.id)) for r in rows if r.id in scores]
    churned = [c for c in cases if c.churned]
    history = {}
    if churned:
        lo = min(c.occurred_on for c in churned) - timedelta(days=365)
        hi = max(c.occurred_on for c in churned)
        ids = [c.account_id for c in churned]
        history = tier_history(session=session, account_ids=ids, lo=lo, hi=hi)
    return cases, rows, history


def case(row: OutcomeRow, s: Score, sentiment: float | None) -> Case:
    return Case(
        account_id=row.account_id,
        name=row.name,
        segment=row.segment,
        owner=row.owner,
        kind=row.kind,
        occurred_on=row.occurred_on,
        score_date=s.score_date,
        total=s.total,
        tier=s.announced_tier,
        model_version=s.model_version,
        confidence=s.confidence,
        reason=s.reason,
        drivers=tuple(s.drivers or ()),
        sentiment=sentiment,
    )


def backtest_report(
    *,
    session: Session,
    lead_days: int = 90,
    since: date | None = None,
    until: date | None = None,
    segment: str | None = None,
) -> dict:
    """`healthbot backtest`: the whole report as one JSON-ready object."""
    cases, rows, history = backtest_cases(
        session=session, lead_days=lead_days, since=since, until=until, segment=segment
    )
    return report(
        cases,
        history,
        lead_days=lead_days,
        since=since.isoformat() if since else None,
        until=until.isoformat() if until else None,
        segment=segment,
        outcomes_in_range=len(rows),
        without_score=len(rows) - len(cases),
    )
