"""The engine's inputs, read for a batch of accounts in a fixed number of queries whatever
its size: accounts, newest scores, one per score window the triggers read, the signal
statistics, last activity, weekly means, sentiment and live tasks. Also what the report
reads: every task, and when accounts turned healthy."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from sqlalchemy import case, func, select
from sqlmodel import Session

from health import customers
from health.models import (
    Account,
    Observation,
    PlaybookTask,
    Score,
    ScoreChange,
    SentimentEntry,
)
from health.repo import chunked
from health.scoring.stats import Needs as StatNeeds
from health.stats_sql import signal_stats
from playbooks.engine import OPEN, TaskState
from playbooks.facts import AccountFacts, ChangeFacts
from playbooks.report import TaskRecord
from playbooks.triggers import Needs

STALE_DAYS = 30  # a score older than this says nothing about the account today


def changes_of(session: Session, change_ids: Sequence[int]) -> dict[int, ChangeFacts]:
    """Per account, the newest of these score changes."""
    out: dict[int, ChangeFacts] = {}
    for part in chunked(sorted(set(change_ids)), 5000):
        q = select(
            ScoreChange.id,
            ScoreChange.account_id,
            ScoreChange.changed_at,
            ScoreChange.from_tier,
            ScoreChange.to_tier,
            ScoreChange.delta,
            ScoreChange.hard_event,
        ).where(ScoreChange.id.in_(part))
        for cid, acc, at, from_tier, to_tier, delta, hard in session.execute(q):
            if acc not in out or out[acc].changed_at <= at:
                out[acc] = ChangeFacts(cid, at, from_tier, to_tier, delta, hard)
    return out


def load_facts(
    session: Session,
    *,
    account_ids: Sequence[int],
    now: datetime,
    needs: Needs,
    changes: Mapping[int, ChangeFacts],
) -> list[AccountFacts]:
    """Facts of one batch of accounts as of `now` (live, unmerged accounts only)."""
    ids = sorted(set(account_ids))
    day = now.date() if now.time() else now.date() - timedelta(days=1)
    accounts = session.execute(
        select(
            Account.id,
            Account.name,
            Account.owner,
            Account.segment,
            Account.arr,
            Account.renewal_date,
            Account.customer_since,
        ).where(Account.id.in_(ids), customers.current(day), Account.merged_into.is_(None))
    ).all()
    scores = _newest_scores(session, ids, day)
    ago = {d: _scores_ago(session, ids, day, d) for d in sorted(needs.score_windows)}
    stats = (
        signal_stats(
            session=session,
            now=now,
            account_ids=ids,
            needs=StatNeeds.of(sorted(needs.stats)),
            signals={signal for signal, _stat in needs.stats},
            lookback_days=needs.lookback or 365,
        )
        if needs.stats
        else {}
    )
    active = _last_active(session, ids, now, needs.last_active)
    weekly = _weekly(session, ids, now, needs.weekly)
    sentiment = _sentiment(session, ids, now) if needs.sentiment else {}
    out = []
    for acc, name, owner, segment, arr, renewal, since in accounts:
        total, tier, reason, drivers, confidence = scores.get(acc, (None,) * 5)
        rating, direction, previous = sentiment.get(acc, (None, None, None))
        out.append(
            AccountFacts(
                account_id=acc,
                name=name,
                owner=owner,
                segment=segment,
                arr=arr,
                renewal_date=renewal,
                customer_since=since,
                total=total,
                tier=tier,
                reason=reason or "",
                drivers=tuple(d.get("label", "") for d in (drivers or [])[:3]),
                confidence=confidence,
                total_ago={d: b[acc] for d, b in ago.items() if acc in b},
                signals=stats.get(acc, {}),
                last_active_days={s: a.get(acc) for s, a in active.items()},
                weekly={s: w.get(acc, ()) for s, w in weekly.items()},
                sentiment=rating,
                sentiment_direction=direction,
                previous_sentiment=previous,
                change=changes.get(acc),
            )
        )
    return out


def _newest_scores(session: Session, ids: Sequence[int], day) -> dict[int, tuple]:
    """The newest score of each account within STALE_DAYS of `day` (older is no claim)."""
    newest = (
        select(Score.account_id, func.max(Score.score_date).label("d"))
        .where(
            Score.account_id.in_(ids),
            Score.score_date <= day,
            Score.score_date > day - timedelta(days=STALE_DAYS),
        )
        .group_by(Score.account_id)
        .subquery()
    )
    q = select(
        Score.account_id,
        Score.total,
        Score.announced_tier,
        Score.reason,
        Score.drivers,
        Score.confidence,
    ).join(newest, (Score.account_id == newest.c.account_id) & (Score.score_date == newest.c.d))
    return {row[0]: tuple(row[1:]) for row in session.execute(q)}


def _scores_ago(session: Session, ids: Sequence[int], day, days: int) -> dict[int, float]:
    """Each account's score `days` before `day` (the newest in the week up to then)."""
    then = day - timedelta(days=days)
    newest = (
        select(Score.account_id, func.max(Score.score_date).label("d"))
        .where(
            Score.account_id.in_(ids),
            Score.score_date <= then,
            Score.score_date > then - timedelta(days=7),
        )
        .group_by(Score.account_id)
        .subquery()
    )
    q = select(Score.account_id, Score.total).join(
        newest, (Score.account_id == newest.c.account_id) & (Score.score_date == newest.c.d)
    )
    return dict(session.execute(q).all())


def _last_active(
    session: Session, ids: Sequence[int], now: datetime, windows: Mapping[str, int]
) -> dict[str, dict[int, float]]:
    """signal -> account -> days since its newest positive value, looking back only as far as
    the triggers ask (an account absent: none within that window)."""
    out: dict[str, dict[int, float]] = {s: {} for s in windows}
    if not windows:
        return out
    q = (
        select(Observation.account_id, Observation.signal, func.max(Observation.observed_at))
        .where(
            Observation.account_id.in_(ids),
            Observation.signal.in_(sorted(windows)),
            Observation.value > 0,
            Observation.observed_at >= now - timedelta(days=max(windows.values())),
            Observation.observed_at < now,
        )
        .group_by(Observation.account_id, Observation.signal)
    )
    for acc, signal, at in session.execute(q):
        at = at if at.tzinfo else at.replace(tzinfo=now.tzinfo)
        out[signal][acc] = (now - at).total_seconds() / 86400
    return out


def _weekly(
    session: Session, ids: Sequence[int], now: datetime, weeks: Mapping[str, int]
) -> dict[str, dict[int, tuple[float | None, ...]]]:
    """signal -> account -> mean of each of the last N weeks, newest first."""
    out: dict[str, dict[int, tuple[float | None, ...]]] = {}
    for signal, n in sorted(weeks.items()):
        start = now - timedelta(weeks=n)
        bucket = case(
            *[(Observation.observed_at >= now - timedelta(weeks=w + 1), w) for w in range(n)],
            else_=n,
        ).label("week")
        q = (
            select(Observation.account_id, bucket, func.avg(Observation.value))
            .where(
                Observation.account_id.in_(ids),
                Observation.signal == signal,
                Observation.observed_at >= start,
                Observation.observed_at < now,
            )
            .group_by(Observation.account_id, bucket)
        )
        means: dict[int, list[float | None]] = {}
        for acc, week, mean in session.execute(q):
            if week < n:
                means.setdefault(acc, [None] * n)[week] = float(mean)
        out[signal] = {acc: tuple(v) for acc, v in means.items()}
    return out


def _sentiment(session: Session, ids: Sequence[int], now: datetime) -> dict[int, tuple]:
    """account -> (newest rating, its direction, the rating before it)."""
    ranked = (
        select(
            SentimentEntry.account_id,
            SentimentEntry.rating,
            SentimentEntry.direction,
            func.row_number()
            .over(
                partition_by=SentimentEntry.account_id,
                order_by=(SentimentEntry.created_at.desc(), SentimentEntry.id.desc()),
            )
            .label("n"),
        )
        .where(SentimentEntry.account_id.in_(ids), SentimentEntry.created_at <= now)
        .subquery()
    )
    out: dict[int, list] = {}
    for acc, rating, direction, n in session.execute(select(ranked).where(ranked.c.n <= 2)):
        row = out.setdefault(acc, [None, None, None])
        if n == 1:
            row[0], row[1] = rating, direction
        else:
            row[2] = rating
    return {acc: tuple(v) for acc, v in out.items()}


def _task_states(session: Session, where) -> list[TaskState]:
    q = (
        select(
            PlaybookTask.id,
            PlaybookTask.account_id,
            PlaybookTask.playbook,
            PlaybookTask.status,
            PlaybookTask.title,
            PlaybookTask.description,
            PlaybookTask.severity,
            PlaybookTask.owner_role,
            PlaybookTask.owner,
            PlaybookTask.due_at,
            PlaybookTask.snoozed_until,
            PlaybookTask.cleared_since,
            PlaybookTask.escalation_level,
            PlaybookTask.overdue_at,
            Account.segment,
            Account.owner,
        )
        .join(Account, Account.id == PlaybookTask.account_id)
        .where(PlaybookTask.resolved_at.is_(None), where)
    )
    return [TaskState(*row) for row in session.execute(q)]


def live_tasks(session: Session, account_ids: Sequence[int]) -> dict[tuple[int, str], TaskState]:
    tasks = _task_states(session, PlaybookTask.account_id.in_(sorted(set(account_ids))))
    return {(t.account_id, t.playbook): t for t in tasks}


def accounts_with_live_tasks(session: Session) -> list[int]:
    q = select(PlaybookTask.account_id).where(PlaybookTask.resolved_at.is_(None)).distinct()
    return list(session.execute(q).scalars())


def tasks_due(session: Session, now: datetime) -> list[TaskState]:
    """Live tasks a sweep may act on: snoozes ended, or past due."""
    return _task_states(
        session,
        ((PlaybookTask.status == "snoozed") & (PlaybookTask.snoozed_until <= now))
        | ((PlaybookTask.status == OPEN) & (PlaybookTask.due_at <= now)),
    )


def report_inputs(
    session: Session, *, since: datetime | None = None
) -> tuple[list[TaskRecord], dict[int, list[datetime]]]:
    """Every task (opened since `since`) and, for their accounts, the instants each was
    announced healthy (tier changes into healthy: few rows, not the score history)."""
    q = select(
        PlaybookTask.account_id,
        PlaybookTask.playbook,
        PlaybookTask.status,
        PlaybookTask.tier_at_open,
        PlaybookTask.triggered_at,
        PlaybookTask.created_at,
        PlaybookTask.due_at,
        PlaybookTask.first_action_at,
        PlaybookTask.resolved_at,
    )
    if since is not None:
        q = q.where(PlaybookTask.created_at >= since)
    tasks = [TaskRecord(*row) for row in session.execute(q)]
    green: dict[int, list[datetime]] = defaultdict(list)
    accounts = sorted({t.account_id for t in tasks})
    for part in chunked(accounts, 5000):
        g = (
            select(ScoreChange.account_id, ScoreChange.changed_at)
            .where(
                ScoreChange.account_id.in_(part),
                ScoreChange.to_tier == "healthy",
                (ScoreChange.from_tier != "healthy") | ScoreChange.from_tier.is_(None),
            )
            .order_by(ScoreChange.account_id, ScoreChange.changed_at)
        )
        for acc, at in session.execute(g):
            green[acc].append(at)
    return tasks, dict(green)
