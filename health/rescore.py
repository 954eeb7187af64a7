"""Rescore accounts now: statistics aggregated in SQL, a batch of accounts scored at once,
one transaction per batch; on PostgreSQL whole batches may go to forked processes."""

from __future__ import annotations

import gc
import multiprocessing
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date

from sqlalchemy import event, select
from sqlalchemy.engine import Engine

from health import customers
from health.db import session_scope
from health.models import Account
from health.repo import accounts_by_id, chunked
from health.score_history import score_history
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
from health.scoring.engine import plan_of, score_columns
from health.scoring.explain import explain
from health.scoring.model import ScoringModel
from health.stats_sql import stats_columns

ACCOUNT_COLUMNS = ("name", "segment", "customer_since", "renewal_date")


def rescore(
    engine: Engine,
    model: ScoringModel,
    *,
    day: date,
    account_ids: Iterable[int] | None = None,
    batch_size: int = 5000,
    workers: int = 1,
    progress: Progress | None = None,
    targets: Collection[str] = (),
) -> RescoreReport:
    """Score the given accounts (default: all live ones) for `day`, one transaction per batch;
    former customers (health.customers) are left out.
    On PostgreSQL, `workers` > 1 processes each take whole batches (read, score, write); the
    statements they send are counted in `RescoreReport.worker_statements`. A changed score
    of an account kept in one of the CRMs `targets` is queued for writeback."""
    report = RescoreReport()
    with session_scope(engine) as session:
        if account_ids is None:
            q = select(Account.id).where(Account.deleted_at.is_(None)).order_by(Account.id)
            ids = list(session.scalars(q))
        else:
            ids = list(account_ids)
        gone = customers.former_among(session, ids, day)
    report.former = len(gone)
    ids = [i for i in ids if i not in gone]
    parts = [list(p) for p in chunked(sorted(set(ids)), batch_size)]
    if workers > 1 and len(parts) > 1 and engine.dialect.name == "postgresql":
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(workers, initializer=init_worker, initargs=(engine,)) as pool:
            jobs = [(model, day, part, tuple(targets)) for part in parts]
            for part, (written, scored, statements) in zip(
                parts, pool.imap(_rescore_job, jobs), strict=True
            ):
                report.worker_statements += statements
                report.no_data += len(part) - scored
                report.add(written, scored=scored, accounts=len(part), progress=progress)
        return report
    for part in parts:
        written, scored = _rescore_part(engine, model, day, part, targets)
        report.no_data += len(part) - scored
        report.add(written, scored=scored, accounts=len(part), progress=progress)
    return report


@contextmanager
def gc_paused() -> Iterator[None]:
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


WORKER: dict = {}


def init_worker(engine: Engine) -> None:
    engine.dispose(close=False)  # the parent's pooled connections stay the parent's
    gc.freeze()  # what the parent had is never garbage here: keep it out of collections
    WORKER["engine"], WORKER["statements"] = engine, 0

    def count(*_args) -> None:
        WORKER["statements"] += 1

    event.listen(engine, "before_cursor_execute", count)


def _rescore_job(job: tuple) -> tuple[WriteReport, int, int]:
    (written, scored), statements = run_counted((_rescore_part, job))
    return written, scored, statements


def run_counted(job: tuple) -> tuple:
    """In a process set up by `init_worker`: (function, args) -> (its result, the statements
    it sent); the function is called with the worker's engine first."""
    fn, args = job
    before = WORKER["statements"]
    result = fn(WORKER["engine"], *args)
    return result, WORKER["statements"] - before


def _rescore_part(
    engine: Engine, model: ScoringModel, day: date, part: Sequence[int], targets: Collection[str]
) -> tuple[WriteReport, int]:
    """Score one batch of accounts (ids ascending) in one transaction. The collector resumes
    once the batch's objects are gone, so it has nothing of theirs to scan."""
    with gc_paused():
        return _score_part(engine, model, day, part, targets)


def _score_part(
    engine: Engine, model: ScoringModel, day: date, part: Sequence[int], targets: Collection[str]
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
            crm_records=crm_records_of(session=session, ids=ids, targets=targets),
            previous={(k, day): h["prev"] for k, h in history.items() if h["prev"] is not None},
        )
    return written, len(rows)
