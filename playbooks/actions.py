"""What a person does to a task (Slack buttons, the CLI): done, snooze, reassign. Each is
one guarded UPDATE (only a live task changes) and one audit entry; the first of them on a
task stamps `first_action_at`, the start of the time-to-first-action measure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, insert, update
from sqlmodel import Session

from health.models import PlaybookTask, PlaybookTaskEvent
from playbooks.engine import DONE, LIVE, OPEN, SNOOZED


@dataclass(frozen=True, slots=True)
class ActionResult:
    ok: bool
    task: PlaybookTask | None
    message: str


def act(
    session: Session,
    task_id: int,
    *,
    action: str,
    actor: str,
    now: datetime,
    until: datetime | None = None,
    owner: str | None = None,
) -> ActionResult:
    """`done`, `snooze` (until), `reassign` (to owner) a live task, as `actor`."""
    values: dict = {
        "updated_at": now,
        "first_action_at": func.coalesce(PlaybookTask.first_action_at, now),
    }
    detail: dict = {}
    if action == "done":
        values |= {"status": DONE, "resolved_at": now, "resolved_by": actor[:64], "notify": False}
    elif action == "snooze":
        if until is None or until <= now:
            return ActionResult(
                False, session.get(PlaybookTask, task_id), "snooze needs a time in the future"
            )
        values |= {"status": SNOOZED, "snoozed_until": until, "notify": False}
        detail["until"] = until.isoformat()
    elif action == "reassign":
        if not owner:
            return ActionResult(
                False, session.get(PlaybookTask, task_id), "reassign needs a person"
            )
        values |= {"owner": owner[:255], "status": OPEN, "notify": True}
        detail["to"] = owner
    else:
        raise ValueError(f"unknown task action {action!r}")
    updated = session.execute(
        update(PlaybookTask)
        .where(PlaybookTask.id == task_id, PlaybookTask.status.in_(LIVE))
        .values(**values)
        .returning(PlaybookTask.id)
    ).first()
    task = session.get(PlaybookTask, task_id)
    if task is None:
        return ActionResult(False, None, "this task no longer exists")
    if updated is None:
        by = f" by {task.resolved_by}" if task.resolved_by else ""
        return ActionResult(False, task, f"this task is already {task.status}{by}")
    session.execute(
        insert(PlaybookTaskEvent),
        [
            {
                "task_id": task_id,
                "at": now,
                "actor": actor[:64],
                "action": action,
                "detail": detail or None,
            }
        ],
    )
    session.refresh(task)
    return ActionResult(
        True, task, {"done": "done", "snooze": "snoozed", "reassign": "reassigned"}[action]
    )
