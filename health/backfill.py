"""Rebuild score history from stored observations: every account on every day of a grid
(daily, weekly, ...), each day seeing only what had been observed before that day ended, so a
team that imports a year of history can backtest at once.

Point in time beyond `observed_at`: an account's segment and start date are kept (a size
class and a signing date: they rarely change and say nothing about how the account will end),
but its renewal date is today's value. After a renewal it names the next term; after a churn
it often stays on the churn date, which would put exactly the churned accounts in the
renewal window (tighter tiers) at a backtest's lead day. So days before `renewal_known_from`
are scored without a renewal date (no renewal-window stage); the report says so.

A batch of accounts costs one read of its observations (`health.timeline_read`) and one
transaction of writes; statistics for all its days come at once from numpy (`Timeline`),
the scoring arithmetic is the live engine's, day by day (trends and held tiers look back to
the grid's earlier days). Scores already stored for an account and day are kept unless
`replace`: a live score is the record of what was known that day.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from types import SimpleNamespace

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from health import customers
from health.db import session_scope
from health.models import Account, Observation, Score
from health.repo import accounts_by_id, chunked
from health.rescore import ACCOUNT_COLUMNS, gc_paused, init_worker, run_counted
from health.score_writes import (
    Progress,
    RescoreReport,
    WriteReport,
    context,
    crm_records_of,
    day_end,
    write_scores,
)
from health.scorebook import prior_state, score_row
from health.scoring.engine import AccountContext, plan_of, score_columns
from health.scoring.explain import explain
from health.scoring.model import ScoringModel
from health.scoring.timeline import Timeline, epoch
from health.timeline_read import load_timeline

ROWS_PER_BATCH = 40_000  # account-days computed per batch: bounds memory


@dataclass
class BackfillReport(RescoreReport):
    days: int = 0
    kept: int = 0  # scores already stored for an account and day, left as they were
    renewal_known_from: date | None = None  # days before it were scored without renewal date


def grid(start: date, end: date, every: int) -> list[date]:
    """The scoring days from `start` to `end`, `every` days apart, ending on `end`."""
    if every < 1:
        raise ValueError("every must be at least one day")
    days, d = [], end
    while d >= start:
        days.append(d)
        d -= timedelta(days=every)
    return days[::-1]


def backfill_scores(
    engine: Engine,
    model: ScoringModel,
    *,
    start: date,
    end: date,
    every: int = 1,
    renewal_known_from: date | None = None,
    replace: bool = False,
    account_ids: Sequence[int] | None = None,
    workers: int = 1,
    progress: Progress | None = None,
    targets: Collection[str] = (),
    on_start: Callable[[int, int], None] | None = None,
) -> BackfillReport:
    """Score every live account (or `account_ids`) on the grid from `start` to `end`.
    Days before `renewal_known_from` (default: `end`) are scored without the renewal date.
    On PostgreSQL `workers` processes each take whole batches (read, score, write); on SQLite
    they compute and this process writes."""
    days = grid(start, end, every)
    known = renewal_known_from or end
    blind = known if days and days[0] < known else None  # some day scored without it
    report = BackfillReport(days=len(days), renewal_known_from=blind)
    if not days:
        return report
    with session_scope(engine) as session:
        q = select(Account.id).where(Account.deleted_at.is_(None)).order_by(Account.id)
        ids = sorted(set(account_ids)) if account_ids is not None else list(session.scalars(q))
    if on_start:
        on_start(len(ids), len(days))
    size = max(1, min(2000, ROWS_PER_BATCH // len(days)))
    parts = [list(p) for p in chunked(ids, size)]
    job = (model, days, known, replace, tuple(targets))
    if workers > 1 and len(parts) > 1:
        ctx = multiprocessing.get_context("fork")
        postgres = engine.dialect.name == "postgresql"
        with ctx.Pool(workers, initializer=init_worker, initargs=(engine,)) as pool:
            fn = _backfill_part if postgres else _compute_part
            for part, (result, statements) in zip(
                parts, pool.imap(run_counted, [(fn, (p, *job)) for p in parts]), strict=True
            ):
                report.worker_statements += statements
                if not postgres:
                    result = _write_part(engine, part, *result, *job[3:], start=days[0])
                _add(report, part, *result, progress)
        return report
    for part in parts:
        _add(report, part, *_backfill_part(engine, part, *job), progress)
    return report


def _add(report, part, written: WriteReport, scored: int, kept: int, progress) -> None:
    report.kept += kept
    report.no_data += len(part) * report.days - scored - kept
    written.change_ids = []  # history: no playbook acts on it, so none are kept
    report.add(written, scored=scored, accounts=len(part), progress=progress)


def _backfill_part(engine: Engine, part, model, days, known, replace, targets):
    rows, previous = _compute_part(engine, part, model, days, known, replace, targets)
    return _write_part(engine, part, rows, previous, replace, targets, start=days[0])


def _compute_part(engine: Engine, part, model, days, known, _replace, _targets):
    with gc_paused(), session_scope(engine) as session:
        accounts = accounts_by_id(session=session, ids=part, columns=ACCOUNT_COLUMNS)
        timeline = load_timeline(
            session=session,
            ids=[a.id for a in accounts],
            signals=plan_signals(model),
            first=day_end(days[0]),
            last=day_end(days[-1]),
        )
        churned = customers.churn_days(session, [a.id for a in accounts])
    with gc_paused():
        rows, previous = replay(model, timeline, accounts, days, renewal_known_from=known)
    if churned:  # a former customer is not scored after its churn
        rows = [r for r in rows if r["score_date"] <= churned.get(r["account_id"], r["score_date"])]
    return rows, previous


def _write_part(engine, part, rows, previous, replace, targets, *, start):
    with gc_paused(), session_scope(engine) as session:
        kept = 0
        if not replace and rows:
            stored = stored_days(session=session, ids=part, start=start)
            fresh = [r for r in rows if (r["account_id"], r["score_date"]) not in stored]
            kept, rows = len(rows) - len(fresh), fresh
        written = write_scores(
            session=session,
            rows=rows,
            crm_records=crm_records_of(session=session, ids=part, targets=targets),
            previous=previous,
        )
    return written, len(rows), kept


def first_observed_day(*, session: Session) -> date | None:
    """The first day anything was observed (None: nothing yet)."""
    first = session.scalar(select(func.min(Observation.observed_at)))
    return first.date() if first else None


def stored_days(*, session: Session, ids: Sequence[int], start: date) -> set[tuple[int, date]]:
    q = select(Score.account_id, Score.score_date).where(
        Score.account_id.in_(list(ids)), Score.score_date >= start
    )
    return {(a, d) for a, d in session.execute(q)}


def plan_signals(model: ScoringModel) -> list[str]:
    return list(dict.fromkeys(signal for signal, _ in plan_of(model).columns))


def replay(
    model: ScoringModel,
    timeline: Timeline,
    accounts: Sequence,
    days: Sequence[date],
    *,
    renewal_known_from: date,
) -> tuple[list[dict], dict]:
    """Score `accounts` (rows with id, name, segment, customer_since, renewal_date; positions
    in `timeline`) on each of `days` (ascending), each day's trend and held tier looking back
    to the earlier days. Pure. Returns the Score rows and, per (account id, day), the row
    before it (what a ScoreChange compares with)."""
    n = len(accounts)
    if not n:
        return [], {}
    instants = np.array([epoch(day_end(d)) for d in days], dtype=np.int64)
    x = timeline.columns(
        plan_of(model).columns, np.tile(np.arange(n), len(days)), instants.repeat(n)
    )
    full = [context(a) for a in accounts]
    blind = [
        AccountContext(name=c.name, segment=c.segment, customer_since=c.customer_since)
        for c in full
    ]
    histories: list[dict[date, SimpleNamespace]] = [{} for _ in range(n)]
    last: list[SimpleNamespace | None] = [None] * n
    rows, previous = [], {}
    grid_days = set(days)
    for k, d in enumerate(days):
        now = day_end(d)
        # the grid days a score 30 (90) days back may come from, newest first
        back30, back90 = ([d - timedelta(days=b) for b in range(ago, ago + 8)] for ago in (30, 90))
        back30 = [x for x in back30 if x in grid_days]
        back90 = [x for x in back90 if x in grid_days]
        priors = [
            prior_state(last[i], _first(histories[i], back30), _first(histories[i], back90))
            for i in range(n)
        ]
        results = score_columns(
            x[:, k * n : (k + 1) * n],
            model,
            accounts=full if d >= renewal_known_from else blind,
            priors=priors,
            now=now,
        )
        for i, (a, result) in enumerate(zip(accounts, results, strict=True)):
            if result is None:
                continue
            row = score_row(
                result,
                account_id=a.id,
                score_date=d,
                computed_at=now,
                reason=explain(result, name=a.name, model=model),
            )
            state = SimpleNamespace(**row)
            if last[i] is not None:
                previous[(a.id, d)] = last[i]
            histories[i][d] = last[i] = state
            rows.append(row)
    return rows, previous


def _first(history: dict, days: list[date]):
    """The score of the first of `days` the history has (a score `ago` days back, or the
    newest of the week before that: `health.score_history.HISTORY`)."""
    for day in days:
        hit = history.get(day)
        if hit is not None:
            return hit
    return None
