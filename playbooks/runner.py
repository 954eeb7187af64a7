"""Run the playbooks: after a scoring pass (on the changes it stored, once they are
committed) and on a timer (snoozes that ended, overdue tasks). One transaction per batch of
accounts; what a batch reads and writes is a fixed number of statements."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.engine import Engine

from health.db import session_scope
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
