"""The engine's decisions written in bulk: tasks and their audit log.

Opening a task is an INSERT that does nothing when a live task exists (the partial unique
index on account and playbook), so two workers evaluating one change never open it twice.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime

from sqlalchemy import bindparam, insert, select, update
from sqlmodel import Session

from health.models import PlaybookTask, PlaybookTaskEvent
from health.repo import bulk_upsert, chunked
from playbooks.engine import (
    OPEN,
    RECOVERED,
    Cleared,
    Decision,
    Escalate,
    Open,
    Overdue,
    Recover,
    Refresh,
    Unsnooze,
)

LIVE_INDEX_WHERE = "resolved_at IS NULL"  # the predicate of uq_playbooktask_live
ENGINE = "healthbot"  # the audit log's actor for the engine's own changes
T = PlaybookTask.__table__.c  # type: ignore[attr-defined]


@dataclass
class ApplyReport:
    opened: int = 0
    refreshed: int = 0
    cleared: int = 0
    recovered: int = 0
    escalated: int = 0
    overdue: int = 0
    unsnoozed: int = 0
    opened_ids: list[int] | None = None

    def add(self, other: ApplyReport) -> None:
        for f in fields(self):
            if f.name != "opened_ids":
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


def apply(session: Session, decisions: Sequence[Decision], now: datetime) -> ApplyReport:
    """Write the engine's decisions and their audit entries, in bulk."""
    report = ApplyReport(opened_ids=[])
    events: list[dict] = []
    by_kind: dict[type, list] = defaultdict(list)
    for d in decisions:
        by_kind[type(d)].append(d)
    for part in chunked(by_kind[Open], 1000):
        rows = [_open_row(d, now) for d in part]
        inserted = bulk_upsert(  # a live task already there: nothing (the partial index)
            session,
            PlaybookTask,
            rows,
            keys=("account_id", "playbook"),
            update=(),
            returning=("id", "account_id", "playbook"),
            index_where=LIVE_INDEX_WHERE,
        )
        opened = {(acc, pb): tid for tid, acc, pb in inserted}
        for d in part:
            tid = opened.get((d.account_id, d.playbook))
            if tid is None:
                continue  # another worker opened it first: one task, not two
            report.opened += 1
            report.opened_ids.append(tid)
            events.append(
                _event(tid, now, "opened", trigger=d.trigger, owner=d.owner, due=d.due_at)
            )
    _bulk(
        session,
        [
            {"id": d.task_id, "cleared_since": None, "last_triggered_at": now, "updated_at": now}
            for d in by_kind[Refresh]
        ],
    )
    events += [
        _event(d.task_id, now, "condition back", trigger=d.trigger) for d in by_kind[Refresh]
    ]
    report.refreshed = len(by_kind[Refresh])
    _bulk(
        session,
        [{"id": d.task_id, "cleared_since": now, "updated_at": now} for d in by_kind[Cleared]],
    )
    events += [_event(d.task_id, now, "cleared", condition=d.trigger) for d in by_kind[Cleared]]
    report.cleared = len(by_kind[Cleared])
    _bulk(
        session,
        [
            {
                "id": d.task_id,
                "status": RECOVERED,
                "resolved_at": now,
                "resolved_by": ENGINE,
                "updated_at": now,
                "notify": False,
            }
            for d in by_kind[Recover]
        ],
    )
    events += [_event(d.task_id, now, "recovered", cleared_since=d.since) for d in by_kind[Recover]]
    report.recovered = len(by_kind[Recover])
    report.escalated = _escalate(session, by_kind[Escalate], now, events)
    _bulk(
        session,
        [
            {"id": d.task_id, "overdue_at": now, "updated_at": now, "notify": True}
            for d in by_kind[Overdue]
        ],
    )
    events += [_event(d.task_id, now, "overdue") for d in by_kind[Overdue]]
    report.overdue = len(by_kind[Overdue])
    _bulk(
        session,
        [
            {
                "id": d.task_id,
                "status": OPEN,
                "snoozed_until": None,
                "due_at": d.due_at,
                "updated_at": now,
                "notify": True,
            }
            for d in by_kind[Unsnooze]
        ],
    )
    events += [_event(d.task_id, now, "unsnoozed", due=d.due_at) for d in by_kind[Unsnooze]]
    report.unsnoozed = len(by_kind[Unsnooze])
    for part in chunked(events, 1000):
        session.execute(insert(PlaybookTaskEvent), list(part))
    return report


def _escalate(session: Session, decisions: list[Escalate], now: datetime, events: list) -> int:
    if not decisions:
        return 0
    ids = [d.task_id for d in decisions]
    current = dict(
        session.execute(
            select(PlaybookTask.id, PlaybookTask.owner).where(PlaybookTask.id.in_(ids))
        ).all()
    )
    _bulk(
        session,
        [
            {
                "id": d.task_id,
                "owner_role": d.owner_role,
                "owner": d.owner or current.get(d.task_id),
                "due_at": d.due_at,
                "updated_at": now,
                "notify": True,
            }
            for d in decisions
        ],
    )
    session.execute(
        update(PlaybookTask)
        .where(PlaybookTask.id.in_(ids))
        .values(escalation_level=PlaybookTask.escalation_level + 1)
    )
    for d in decisions:
        events.append(
            _event(
                d.task_id,
                now,
                "escalated",
                **{
                    "from": d.from_role,
                    "to": d.owner_role,
                    "owner": d.owner or current.get(d.task_id),
                },
            )
        )
    return len(decisions)


def _bulk(session: Session, rows: list[dict]) -> None:
    """UPDATE by primary key, many rows in one executemany per set of columns."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for row in rows:
        groups[tuple(row)].append(row)
    for cols, group in groups.items():
        values = {c: bindparam(f"p_{c}", type_=T[c].type) for c in cols if c != "id"}
        stmt = update(PlaybookTask).where(T.id == bindparam("p_id")).values(values)
        session.connection().execute(stmt, [{f"p_{k}": v for k, v in r.items()} for r in group])


def _open_row(d: Open, now: datetime) -> dict:
    return {
        "account_id": d.account_id,
        "playbook": d.playbook,
        "title": d.title,
        "description": d.description,
        "steps": list(d.steps),
        "severity": d.severity,
        "status": OPEN,
        "owner_role": d.owner_role,
        "owner": d.owner,
        "escalation_level": 0,
        "trigger": d.trigger,
        "tier_at_open": d.tier,
        "score_at_open": d.total,
        "change_id": d.change_id,
        "rule_version": d.rule_version,
        "alert_channel": d.alert_channel,
        "triggered_at": d.triggered_at,
        "created_at": now,
        "updated_at": now,
        "last_triggered_at": now,
        "due_at": d.due_at,
        "notify": True,
    }


def _event(task_id: int, at: datetime, action: str, *, actor: str = ENGINE, **detail) -> dict:
    clean = {
        k: (v.isoformat() if isinstance(v, datetime) else v)
        for k, v in detail.items()
        if v is not None
    }
    return {"task_id": task_id, "at": at, "actor": actor, "action": action, "detail": clean or None}
