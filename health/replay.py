"""Replay scoring day by day over history (statistics from in-memory series), so trends,
held tiers and score changes are what they would have been had healthbot run every day."""

from __future__ import annotations

import multiprocessing
from collections.abc import Collection, Sequence
from datetime import date, timedelta
from types import SimpleNamespace

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from health.db import session_scope
from health.models import Account, Observation
from health.repo import chunked
from health.score_writes import (
    Progress,
    RescoreReport,
    context,
    crm_records_of,
    day_end,
    write_scores,
)
from health.scorebook import prior_state, score_row
from health.scoring.engine import score_many
from health.scoring.explain import explain
from health.scoring.model import ScoringModel
from health.scoring.stats import SignalSeries


def backfill(
    engine: Engine,
    model: ScoringModel,
    *,
    start: date,
    end: date,
    batch_accounts: int = 50,
    workers: int = 1,
    progress: Progress | None = None,
    targets: Collection[str] = (),
) -> RescoreReport:
    """Replay scoring day by day from `start` to `end` for every account, so history (trends,
    held tiers, score changes) is what it would have been had healthbot run every day.
    Computing is spread over `workers` processes; writing stays in this one."""
    report = RescoreReport()
    days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    with session_scope(engine) as session:
        accounts = (
            session.exec(select(Account).where(Account.deleted_at.is_(None)).order_by(Account.id))
            .scalars()
            .all()
        )
    parts = [list(p) for p in chunked(accounts, batch_accounts)]
    jobs = [
        (str(engine.url.render_as_string(hide_password=False)), model, part, days) for part in parts
    ]
    if workers > 1 and len(parts) > 1:
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(workers) as pool:
            for part, rows in zip(parts, pool.imap(_replay_part, jobs), strict=True):
                _store_replay(engine, part, rows, report, progress, targets)
    else:
        for part, job in zip(parts, jobs, strict=True):
            _store_replay(engine, part, _replay(engine, *job[1:]), report, progress, targets)
    return report


def _store_replay(engine, part, rows, report, progress, targets) -> None:
    previous, last = {}, {}
    for row in sorted(rows, key=lambda r: (r["account_id"], r["score_date"])):
        if (prev := last.get(row["account_id"])) is not None:
            previous[(row["account_id"], row["score_date"])] = prev
        last[row["account_id"]] = SimpleNamespace(**row)
    with session_scope(engine) as session:
        w = write_scores(
            session=session,
            rows=rows,
            crm_records=crm_records_of(session=session, ids=[a.id for a in part], targets=targets),
            previous=previous,
        )
    report.add(w, scored=len(rows), accounts=len(part), progress=progress)


def _replay_part(job: tuple) -> list[dict]:
    url, *rest = job
    from health.db import make_engine

    engine = make_engine(url)
    try:
        return _replay(engine, *rest)
    finally:
        engine.dispose()


def _replay(
    engine: Engine, model: ScoringModel, part: Sequence[Account], days: Sequence[date]
) -> list[dict]:
    with session_scope(engine) as session:
        series = _load_series(session, [a.id for a in part])
    rows = []
    contexts = [context(a) for a in part]
    histories: list[dict] = [{} for _ in part]
    for d in days:  # every account of the part on one day at once
        now = day_end(d)
        stats = []
        for a in part:
            at_day = {}
            for sig, s in series.get(a.id, {}).items():
                st = s.stats_at(now)
                if st is not None:
                    at_day[sig] = st
            stats.append(at_day)
        priors = [
            prior_state(h.get(d - timedelta(days=1)), _near(h, d, 30), _near(h, d, 90))
            for h in histories
        ]
        results = score_many(stats, model, accounts=contexts, priors=priors, now=now)
        for a, history, result in zip(part, histories, results, strict=True):
            if result is None:
                continue
            row = score_row(
                result,
                account_id=a.id,
                score_date=d,
                computed_at=now,
                reason=explain(result, name=a.name, model=model),
            )
            history[d] = SimpleNamespace(**row)
            rows.append(row)
    return rows


def _near(history: dict, day: date, ago: int):
    for back in range(ago, ago + 8):
        hit = history.get(day - timedelta(days=back))
        if hit is not None:
            return hit
    return None


def _load_series(session: Session, ids: Sequence[int]) -> dict[int, dict[str, SignalSeries]]:
    points: dict[int, dict[str, list]] = {}
    rows = session.execute(
        select(
            Observation.account_id, Observation.signal, Observation.observed_at, Observation.value
        ).where(Observation.account_id.in_(ids))
    )
    for acc, sig, at, value in rows:
        points.setdefault(acc, {}).setdefault(sig, []).append((at, value))
    return {acc: {sig: SignalSeries(p) for sig, p in sigs.items()} for acc, sigs in points.items()}
