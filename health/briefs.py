"""Read models: the portfolio overview and one account's brief (CLI today, Slack later)."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime

from sqlalchemy import bindparam, func, select
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from health import customers
from health.identity import records_of
from health.models import Account, Observation, Outcome, Score, ScoreChange, SyncState
from health.score_history import scores_as_of
from health.scoring.model import ALL_TIERS, INSUFFICIENT, ScoringModel

WORST_FIRST = ("critical", "at_risk", "monitor", "healthy", INSUFFICIENT)


@dataclass(frozen=True)
class AccountLine:
    account_id: int
    name: str
    domain: str | None
    owner: str | None
    segment: str | None
    arr: float | None
    total: float
    tier: str
    trend_30d: float | None
    confidence: float
    reason: str


@dataclass(frozen=True)
class TierSummary:
    tier: str
    accounts: int
    arr: float


@dataclass(frozen=True)
class Portfolio:
    day: date | None
    tiers: list[TierSummary]
    at_risk: list[AccountLine]
    unscored: int
    former: int = 0  # accounts that churned (not counted in the tiers)


@dataclass(frozen=True)
class ComponentView:
    key: str
    label: str
    score: float | None
    share: float
    age_days: float | None
    stale: bool
    metrics: list[tuple[str, str, float, float | None]]  # label, format, value, score


@dataclass(frozen=True)
class Brief:
    line: AccountLine
    announced_tier: str
    pending_tier: str | None
    trend_90d: float | None
    score_date: date
    model_version: str
    renewal_date: date | None
    customer_since: date | None
    components: list[ComponentView]
    history: list[float]  # daily totals, oldest first (up to 90)
    changes: list[dict] = field(default_factory=list)
    outcomes: list[dict] = field(default_factory=list)
    records: list[dict] = field(default_factory=list)  # the CRM records it links
    history_gap: str | None = None  # observations older than the score history: how to fill
    churned_on: date | None = None  # a former customer: the day it churned (newest outcome)

    def as_dict(self) -> dict:
        return asdict(self)


def account_line(a: Account, s: Score) -> AccountLine:
    return AccountLine(
        a.id,
        a.name,
        a.domain,
        a.owner,
        a.segment,
        a.arr,
        s.total,
        s.announced_tier,
        s.trend_30d,
        s.confidence,
        s.reason,
    )


def portfolio(*, session: Session, top: int = 10) -> Portfolio:
    latest = scores_as_of(session=session, ids=None, lo=None, hi=None)
    accounts = session.exec(select(Account).where(customers.current())).scalars().all()
    gone = Account.deleted_at.is_(None) & customers.churned()
    former = session.scalar(select(func.count()).select_from(Account).where(gone)) or 0
    lines = [account_line(a, latest[a.id]) for a in accounts if a.id in latest]
    tiers = [
        TierSummary(
            t, sum(1 for x in lines if x.tier == t), sum(x.arr or 0 for x in lines if x.tier == t)
        )
        for t in ALL_TIERS  # insufficient data counted on its own, never in a risk tier
    ]
    risky = sorted(
        (x for x in lines if x.tier in ("at_risk", "critical")),
        key=lambda x: (x.total, -(x.arr or 0)),
    )
    day = max((s.score_date for s in latest.values()), default=None)
    return Portfolio(day, tiers, risky[:top], unscored=len(accounts) - len(lines), former=former)


def book(*, session: Session, owner: str) -> list[AccountLine]:
    """A CSM's accounts (owner's email), scored, worst first."""
    q = select(Account).where(customers.current(), func.lower(Account.owner) == owner)
    accounts = session.exec(q).scalars().all()
    latest = scores_as_of(session=session, ids=[a.id for a in accounts], lo=None, hi=None)
    lines = [account_line(a, latest[a.id]) for a in accounts if a.id in latest]
    return sorted(lines, key=lambda x: (WORST_FIRST.index(x.tier), x.total))


SIMILAR_CANDIDATES = 200
_SIMILAR = (  # pg_trgm: names sharing enough trigrams (similarity >= 0.3), the closest first
    select(Account.name)
    .where(Account.deleted_at.is_(None), func.lower(Account.name).op("%")(bindparam("q")))
    .order_by(func.similarity(func.lower(Account.name), bindparam("q")).desc())
    .limit(SIMILAR_CANDIDATES)
)


def nearest_names(*, session: Session, name: str, n: int = 3) -> list[str]:
    """The account names closest to `name` (for "did you mean"), by difflib's similarity.
    On PostgreSQL it weighs the 200 names closest by trigrams (pg_trgm, in the server), not
    every name: difflib over 100,000 names held the interpreter for a second, stalling every
    other command of the process. No trigram candidate (or no pg_trgm): every name."""
    names: Sequence[str] = ()
    if session.get_bind().dialect.name == "postgresql":
        try:
            with session.begin_nested():  # without pg_trgm the statement fails: roll it back
                names = session.execute(_SIMILAR, {"q": name.strip().lower()}).scalars().all()
        except DBAPIError:
            names = ()
    if not names:
        q = select(Account.name).where(Account.deleted_at.is_(None))
        names = session.execute(q).scalars().all()
    return difflib.get_close_matches(name, list(names), n=n, cutoff=0.5)


def freshness(*, session: Session) -> dict[str, datetime]:
    """When each source last synced (what a brief's "data as of" line shows)."""
    return dict(session.execute(select(SyncState.source, SyncState.updated_at)).all())


BACKFILL_HINT_DAYS = 14  # observations this much older than the first score: say so


def history_gap(*, session: Session, account_id: int, first_score: date) -> str | None:
    """When the account's observations go back well before its first stored score (a history
    imported at once), what the trend and sparkline are missing and how to fill them."""
    first = session.scalar(
        select(func.min(Observation.observed_at)).where(Observation.account_id == account_id)
    )
    if first is None or (first_score - first.date()).days < BACKFILL_HINT_DAYS:
        return None
    return (
        f"Score history starts {first_score}, but observations go back to {first.date()}: "
        "run `healthbot score --backfill` to fill the trend and sparkline."
    )


HISTORY_DAYS = 90  # daily totals a brief's sparkline and history_gap look at
# Built once (composing a statement costs more Python than running it). The newest score is
# read whole; the older ones' totals only: whole rows would parse every day's breakdown.
_LATEST = (
    select(Score)
    .where(Score.account_id == bindparam("account_id"))
    .order_by(Score.score_date.desc())
    .limit(1)
)
_HISTORY = (
    select(Score.score_date, Score.total)
    .where(Score.account_id == bindparam("account_id"))
    .order_by(Score.score_date.desc())
    .limit(HISTORY_DAYS)
)
_CHANGES = (
    select(ScoreChange)
    .where(ScoreChange.account_id == bindparam("account_id"), ScoreChange.tier_announced)
    .order_by(ScoreChange.changed_at.desc())
    .limit(5)
)
_OUTCOMES = (
    select(Outcome)
    .where(Outcome.account_id == bindparam("account_id"))
    # newest first; on one day a churn before a renewal, as health.customers reads them
    .order_by(Outcome.occurred_on.desc(), (Outcome.kind != "churned"), Outcome.id)
)


def account_brief(*, session: Session, account: Account, model: ScoringModel) -> Brief | None:
    """One account's brief, in a fixed number of statements whatever its history."""
    key = {"account_id": account.id}
    s = session.execute(_LATEST, key).scalars().first()
    if s is None:
        return None
    history = session.execute(_HISTORY, key).all()  # newest first
    labels = {
        k: (c.label, {mk: (m.label, m.format) for mk, m in c.metrics.items()})
        for k, c in model.components.items()
    }
    components = []
    for key_, comp in (s.components or {}).items():
        label, metric_labels = labels.get(key_, (key_, {}))
        metrics = []
        for mk, v in comp.get("metrics", {}).items():
            mlabel, fmt = metric_labels.get(mk, (mk, "number"))
            metrics.append((mlabel, fmt, v[0], v[1]))
        components.append(
            ComponentView(
                key_,
                label,
                comp.get("score"),
                comp.get("share", 0.0),
                comp.get("age_days"),
                comp.get("stale", False),
                metrics,
            )
        )
    changes = session.execute(_CHANGES, key).scalars().all()
    outcomes = session.execute(_OUTCOMES, key).scalars().all()
    return Brief(
        line=account_line(account, s),
        announced_tier=s.announced_tier,
        pending_tier=s.tier if s.tier != s.announced_tier else None,
        trend_90d=s.trend_90d,
        score_date=s.score_date,
        model_version=s.model_version,
        renewal_date=account.renewal_date,
        customer_since=account.customer_since,
        components=components,
        history=[total for _, total in reversed(history)],
        changes=[
            {
                "on": c.changed_at.date().isoformat(),
                "from": c.from_tier,
                "to": c.to_tier,
                "total": c.to_total,
                "hard_event": c.hard_event,
            }
            for c in changes
        ],
        outcomes=[
            {"kind": o.kind, "on": o.occurred_on.isoformat(), "arr_change": o.arr_change}
            for o in outcomes
        ],
        records=[
            {"source": r.source, "id": r.external_id, "linked_by": r.linked_by, "name": r.name}
            for r in records_of(session=session, account_ids=[account.id]).get(account.id, [])
        ],
        history_gap=history_gap(session=session, account_id=account.id, first_score=history[-1][0])
        if len(history) < HISTORY_DAYS
        else None,
        churned_on=churned_on(account, outcomes),
    )


def is_former(b: Brief, today: date) -> bool:
    """A former customer on `today` (churned before it), as health.customers counts them."""
    return b.churned_on is not None and b.churned_on < today


def churn_note(b: Brief, today: date) -> str | None:
    """What a brief says about a churn: a former customer, or a contract ending."""
    if b.churned_on is None:
        return None
    if not is_former(b, today):
        return f"Renewal lost: the contract ends {b.churned_on}; still scored until then."
    return (
        f"Former customer: churned on {b.churned_on}. Not scored since, and left out of the "
        "portfolio, digests and playbooks; the history below is as it stood."
    )


def churned_on(account: Account, outcomes: Sequence[Outcome]) -> date | None:
    """The day of the churn when the account's newest outcome (newest first) is one and no
    newer customer_since started it again (health.customers says the same in SQL)."""
    if not outcomes or outcomes[0].kind != "churned":
        return None
    day = outcomes[0].occurred_on
    return day if account.customer_since is None or account.customer_since <= day else None
