"""Run the playbooks: after a scoring pass (on the changes it stored, once they are
committed) and on a timer (snoozes that ended, overdue tasks). One transaction per batch of
accounts; what a batch reads and writes is a fixed number of statements."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import select
from sqlalchemy.engine import Engine

from health.db import session_scope
from health.models import ScoreChange
from health.repo import chunked
from playbooks.engine import evaluate, needs_of, sweep
from playbooks.reads import accounts_with_live_tasks, changes_of, live_tasks, load_facts, tasks_due
from playbooks.spec import PlaybookSet
from playbooks.store import ApplyReport, apply


def run_playbooks(
    engine: Engine,
    book: PlaybookSet,
    *,
    change_ids: Sequence[int],
    now: datetime,
    recheck_live: bool = False,
    batch_size: int = 5000,
) -> ApplyReport:
    """Evaluate the accounts of these score changes (and, with `recheck_live`, every account
    with a live task, so conditions that cleared lead to recovery) as of `now`."""
    report = ApplyReport(opened_ids=[])
    with session_scope(engine) as session:
        changes = changes_of(session, change_ids)
        ids = set(changes)
        if recheck_live:
            ids.update(accounts_with_live_tasks(session))
    needs = needs_of(book)
    for part in chunked(sorted(ids), batch_size):
        with session_scope(engine) as session:
            facts = load_facts(session, account_ids=part, now=now, needs=needs, changes=changes)
            decisions = evaluate(book, facts, live_tasks(session, part), now)
            done = apply(session, decisions, now)
        report.add(done)
        report.opened_ids.extend(done.opened_ids or [])
    return report


def sweep_playbooks(engine: Engine, book: PlaybookSet, *, now: datetime) -> ApplyReport:
    """Snoozed tasks whose snooze ended come back; overdue ones escalate."""
    with session_scope(engine) as session:
        return apply(session, sweep(book, tasks_due(session, now), now), now)


def replay_playbooks(
    engine: Engine,
    book: PlaybookSet,
    *,
    days: Sequence[date],
    progress: Callable[[int], None] | None = None,
) -> ApplyReport:
    """Run the playbooks over stored history, day by day, as they would have run after each
    day's scoring (`now` = the end of that day): what a year of history would have asked of
    the team. Each day: that day's changes, every live task re-checked, then the sweep."""
    report = ApplyReport(opened_ids=[])
    for day in days:
        now = datetime.combine(day + timedelta(days=1), time(), tzinfo=UTC)
        with session_scope(engine) as session:
            q = select(ScoreChange.id).where(
                ScoreChange.changed_at > now - timedelta(days=1), ScoreChange.changed_at <= now
            )
            ids = list(session.execute(q).scalars())
        report.add(run_playbooks(engine, book, change_ids=ids, now=now, recheck_live=True))
        report.add(sweep_playbooks(engine, book, now=now))
        if progress:
            progress(1)
    return report
