"""Scoring use-cases: rescore accounts now (statistics aggregated in SQL, batched), and replay
history day by day (statistics from in-memory series). Both write through `write_scores`."""

from __future__ import annotations

import gc
import multiprocessing
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from types import SimpleNamespace

from sqlalchemy import event, select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from health.db import session_scope
from health.models import Account, Observation, OutboxItem, Score, ScoreChange
from health.repo import accounts_by_id, bulk_upsert, chunked
from health.score_history import score_history
from health.scorebook import prior_state, score_row
from health.scoring.engine import AccountContext, plan_of, score_columns, score_many
from health.scoring.explain import explain
from health.scoring.model import ScoringModel
from health.scoring.stats import SignalSeries
from health.stats_sql import stats_columns

WRITEBACK_TARGETS = ("salesforce", "hubspot")
ACCOUNT_COLUMNS = ("name", "segment", "customer_since", "renewal_date", "source")
Progress = Callable[[int], None]  # called with the number of accounts just finished


@dataclass
class RescoreReport:
    accounts: int = 0
    scored: int = 0
    no_data: int = 0
    changes: int = 0
    announced: int = 0
    worker_statements: int = 0  # sent by worker processes, unseen by the caller's engine

    def add(
        self, written: WriteReport, *, scored: int, accounts: int, progress: Progress | None
    ) -> None:
        self.changes += written.changes
        self.announced += written.announced
        self.scored += scored
        self.accounts += accounts
        if progress:
            progress(accounts)


def day_end(day: date) -> datetime:
    """A scoring day's instant: everything observed up to the end of that UTC day counts."""
    return datetime.combine(day + timedelta(days=1), time(), tzinfo=UTC)


def context(a: Account) -> AccountContext:
    return AccountContext(
        name=a.name, segment=a.segment, customer_since=a.customer_since, renewal_date=a.renewal_date
    )


def rescore(
    engine: Engine,
    model: ScoringModel,
    *,
    day: date,
    account_ids: Iterable[int] | None = None,
    batch_size: int = 5000,
    workers: int = 1,
    progress: Progress | None = None,
) -> RescoreReport:
    """Score the given accounts (default: all live ones) for `day`, one transaction per batch.
    On PostgreSQL, `workers` > 1 processes each take whole batches (read, score, write); the
    statements they send are counted in `RescoreReport.worker_statements`."""
    report = RescoreReport()
    with session_scope(engine) as session:
        q = select(Account.id).where(Account.deleted_at.is_(None)).order_by(Account.id)
        ids = list(account_ids) if account_ids is not None else session.exec(q).scalars().all()
    parts = [list(p) for p in chunked(sorted(set(ids)), batch_size)]
    if workers > 1 and len(parts) > 1 and engine.dialect.name == "postgresql":
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(workers, initializer=_init_rescore_worker, initargs=(engine,)) as pool:
            jobs = [(model, day, part) for part in parts]
            for part, (written, scored, statements) in zip(
                parts, pool.imap(_rescore_job, jobs), strict=True
            ):
                report.worker_statements += statements
                report.no_data += len(part) - scored
                report.add(written, scored=scored, accounts=len(part), progress=progress)
        return report
    for part in parts:
        written, scored = _rescore_part(engine, model, day, part)
        report.no_data += len(part) - scored
        report.add(written, scored=scored, accounts=len(part), progress=progress)
    return report


@contextmanager
def _gc_paused() -> Iterator[None]:
    """A batch allocates ~100 acyclic objects per account; cycle collections triggered by those
    allocations would scan every live object over and over (~40% of the scoring time). Plain
    reference counting frees them all the same."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


_WORKER: dict = {}


def _init_rescore_worker(engine: Engine) -> None:
    engine.dispose(close=False)  # the parent's pooled connections stay the parent's
    gc.freeze()  # what the parent had is never garbage here: keep it out of collections
    _WORKER["engine"], _WORKER["statements"] = engine, 0

    def count(*_args) -> None:
        _WORKER["statements"] += 1

    event.listen(engine, "before_cursor_execute", count)


def _rescore_job(job: tuple) -> tuple[WriteReport, int, int]:
    before = _WORKER["statements"]
    written, scored = _rescore_part(_WORKER["engine"], *job)
    return written, scored, _WORKER["statements"] - before


def _rescore_part(
    engine: Engine, model: ScoringModel, day: date, part: Sequence[int]
) -> tuple[WriteReport, int]:
    """Score one batch of accounts (ids ascending) in one transaction. The collector resumes
    once the batch's objects are gone, so it has nothing of theirs to scan."""
    with _gc_paused():
        return _score_part(engine, model, day, part)


def _score_part(
    engine: Engine, model: ScoringModel, day: date, part: Sequence[int]
) -> tuple[WriteReport, int]:
    now = day_end(day)
    dense = part[-1] - part[0] < 2 * len(part)  # an id range reads no more than twice the rows
    with session_scope(engine) as session:
        accounts = accounts_by_id(session=session, ids=part, columns=ACCOUNT_COLUMNS)
        ids = [a.id for a in accounts]
        stats = stats_columns(
            session=session,
            now=now,
            ids=ids,
            columns=plan_of(model).columns,
            needs=model.needs(),
            dense=dense,
        )
        history = score_history(session=session, ids=part, day=day)
        results = score_columns(
            stats,
            model,
            accounts=[context(a) for a in accounts],
            priors=[prior_state(**history[a.id]) for a in accounts],
            now=now,
        )
        rows = [
            score_row(
                result,
                account_id=a.id,
                score_date=day,
                computed_at=now,
                reason=explain(result, name=a.name, model=model),
            )
            for a, result in zip(accounts, results, strict=True)
            if result is not None
        ]
        written = write_scores(
            session=session,
            rows=rows,
            sources={a.id: a.source for a in accounts},
            previous={(k, day): h["prev"] for k, h in history.items() if h["prev"] is not None},
        )
    return written, len(rows)


@dataclass
class WriteReport:
    changes: int = 0
    announced: int = 0


def write_scores(
    *, session: Session, rows: Sequence[dict], sources: dict[int, str], previous: dict
) -> WriteReport:
    """Insert (or replace, on a rerun of the same day) Score rows; a ScoreChange where the
    score or tier moved; an outbox row for the CRM where what the CRM shows changed.
    `previous` maps (account id, score date) -> the Score before it (anything with a Score's
    attributes); rows may span several days."""
    report = WriteReport()
    if not rows:
        return report
    written = bulk_upsert(
        session,
        Score,
        rows,
        keys=("account_id", "score_date"),
        update=[c for c in rows[0] if c not in ("account_id", "score_date")],
        returning=("id", "account_id", "score_date"),
    )
    score_ids = {(acc, day): sid for sid, acc, day in written}
    last_outbox: dict[int, dict] = {}
    changes = []
    for row in rows:
        acc, day = row["account_id"], row["score_date"]
        prev, score_id = previous.get((acc, day)), score_ids[(acc, day)]
        announced = prev is not None and prev.announced_tier != row["announced_tier"]
        if (
            prev is None
            or abs(row["total"] - prev.total) >= 1
            or row["tier"] != prev.tier
            or announced
        ):
            changes.append(
                {
                    "account_id": acc,
                    "score_id": score_id,
                    "changed_at": row["computed_at"],
                    "from_total": prev.total if prev else None,
                    "to_total": row["total"],
                    "delta": round(row["total"] - prev.total, 1) if prev else 0.0,
                    "from_tier": prev.announced_tier if prev else None,
                    "to_tier": row["announced_tier"],
                    "tier_announced": announced,
                    "hard_event": (row["hard_events"] or [None])[0],
                    "reason": row["reason"],
                }
            )
        if sources.get(acc) in WRITEBACK_TARGETS and (
            prev is None or round(row["total"]) != round(prev.total) or announced
        ):
            last_outbox[acc] = {
                "account_id": acc,
                "target": sources[acc],
                "score_id": score_id,
                "created_at": row["computed_at"],
                "attempts": 0,
            }
    if changes:
        bulk_upsert(
            session,
            ScoreChange,
            changes,
            keys=("score_id",),
            update=[c for c in changes[0] if c != "score_id"],
        )
    bulk_upsert(
        session,
        OutboxItem,
        list(last_outbox.values()),
        keys=("account_id", "target"),
        update=("score_id", "created_at", "attempts"),
    )
    report.changes = len(changes)
    report.announced = sum(1 for c in changes if c["tier_announced"])
    return report


def backfill(
    engine: Engine,
    model: ScoringModel,
    *,
    start: date,
    end: date,
    batch_accounts: int = 50,
    workers: int = 1,
    progress: Progress | None = None,
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
                _store_replay(engine, part, rows, days, report, progress)
    else:
        for part, job in zip(parts, jobs, strict=True):
            _store_replay(engine, part, _replay(engine, *job[1:]), days, report, progress)
    return report


def _store_replay(engine, part, rows, days, report, progress) -> None:
    previous, last = {}, {}
    for row in sorted(rows, key=lambda r: (r["account_id"], r["score_date"])):
        if (prev := last.get(row["account_id"])) is not None:
            previous[(row["account_id"], row["score_date"])] = prev
        last[row["account_id"]] = SimpleNamespace(**row)
    with session_scope(engine) as session:
        w = write_scores(
            session=session, rows=rows, sources={a.id: a.source for a in part}, previous=previous
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
