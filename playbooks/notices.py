"""Tasks as Slack shows them: what is waiting to be told to someone, which tasks share one
message (it is re-rendered in place when one of them is acted on), a person's open tasks
(App Home) and an account's (the brief). Reads and writes in batches; no Slack here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import exists, func, insert, select, update
from sqlmodel import Session

from health.models import Account, PlaybookTask, PlaybookTaskEvent
from health.repo import chunked

ORDER = {"high": 0, "medium": 1, "low": 2}
ALERTED = "alerted"  # the audit action of a task announced in its playbook's alert channel


@dataclass(frozen=True, slots=True)
class TaskNotice:
    """A task with what a message about it needs."""

    id: int
    account_id: int
    account: str
    playbook: str
    title: str
    description: str
    steps: tuple[str, ...]
    severity: str
    status: str
    owner: str | None
    owner_role: str
    escalation_level: int
    due_at: datetime
    snoozed_until: datetime | None
    overdue_at: datetime | None
    resolved_at: datetime | None
    resolved_by: str | None
    notified_at: datetime | None
    alert_channel: str | None

    @property
    def sort_key(self) -> tuple:
        return (ORDER.get(self.severity, 3), self.due_at, self.id)


_COLUMNS = (
    PlaybookTask.id,
    PlaybookTask.account_id,
    Account.name,
    PlaybookTask.playbook,
    PlaybookTask.title,
    PlaybookTask.description,
    PlaybookTask.steps,
    PlaybookTask.severity,
    PlaybookTask.status,
    PlaybookTask.owner,
    PlaybookTask.owner_role,
    PlaybookTask.escalation_level,
    PlaybookTask.due_at,
    PlaybookTask.snoozed_until,
    PlaybookTask.overdue_at,
    PlaybookTask.resolved_at,
    PlaybookTask.resolved_by,
    PlaybookTask.notified_at,
    PlaybookTask.alert_channel,
)


def _notices(session: Session, where, limit: int | None = None) -> list[TaskNotice]:
    q = select(*_COLUMNS).join(Account, Account.id == PlaybookTask.account_id).where(where)
    if limit:
        q = q.order_by(PlaybookTask.due_at).limit(limit)
    out = []
    for row in session.execute(q):
        values = list(row)
        values[6] = tuple(values[6] or ())
        out.append(TaskNotice(*values))
    return sorted(out, key=lambda t: t.sort_key)


def pending(session: Session) -> dict[str, list[TaskNotice]]:
    """Per owner (email, lower-cased; "" for tasks nobody holds), the live tasks a message is
    due about."""
    where = (
        PlaybookTask.notify.is_(True)
        & PlaybookTask.resolved_at.is_(None)
        & (PlaybookTask.status == "open")
    )
    out: dict[str, list[TaskNotice]] = {}
    for t in _notices(session, where):
        out.setdefault((t.owner or "").lower(), []).append(t)
    return out


def recently_told(
    session: Session, *, tasks: Sequence[TaskNotice], since: datetime
) -> set[tuple[str, int]]:
    """(owner email, account) pairs: a message about another task of one of these tasks'
    accounts went to that person since `since`. One query per 5,000 accounts."""
    out: set[tuple[str, int]] = set()
    for part in chunked(sorted({t.account_id for t in tasks}), 5000):
        q = select(func.lower(PlaybookTask.owner), PlaybookTask.account_id).where(
            PlaybookTask.account_id.in_(part),
            PlaybookTask.notify.is_(False),  # told, not waiting (the pending ones are)
            PlaybookTask.notified_at >= since,
            PlaybookTask.owner.is_not(None),
        )
        out.update((owner, acc) for owner, acc in session.execute(q))
    return out


def alerts_due(session: Session, *, since: datetime) -> dict[str, list[TaskNotice]]:
    """Per alert channel, the live tasks opened since `since` that its playbook announces
    there and that have not been announced yet (an "alerted" event marks each that was)."""
    told = exists().where(
        (PlaybookTaskEvent.task_id == PlaybookTask.id) & (PlaybookTaskEvent.action == ALERTED)
    )
    where = (
        PlaybookTask.alert_channel.is_not(None)
        & (PlaybookTask.escalation_level == 0)
        & PlaybookTask.resolved_at.is_(None)
        & (PlaybookTask.created_at >= since)
        & ~told
    )
    out: dict[str, list[TaskNotice]] = {}
    for t in _notices(session, where):
        out.setdefault(t.alert_channel or "", []).append(t)
    return out


def mark_alerted(session: Session, *, ids: Sequence[int], channel: str, now: datetime) -> None:
    rows = [
        {"task_id": i, "at": now, "actor": "healthbot", "action": ALERTED,
         "detail": {"channel": channel}}
        for i in ids
    ]  # fmt: skip
    for part in chunked(rows):
        session.execute(insert(PlaybookTaskEvent), list(part))


def mark_sent(
    session: Session, *, ids: Sequence[int], channel: str, ts: str, now: datetime
) -> None:
    for part in chunked(list(ids)):
        session.execute(
            update(PlaybookTask)
            .where(PlaybookTask.id.in_(part))
            .values(notify=False, notified_at=now, slack_channel_id=channel, slack_ts=ts)
        )


def in_message(session: Session, *, channel: str, ts: str) -> list[TaskNotice]:
    """Every task one Slack message shows (to re-render it in place)."""
    where = (PlaybookTask.slack_channel_id == channel) & (PlaybookTask.slack_ts == ts)
    return _notices(session, where)


def task(session: Session, task_id: int) -> TaskNotice | None:
    found = _notices(session, PlaybookTask.id == task_id)
    return found[0] if found else None


def open_for_owner(session: Session, owner: str, *, limit: int = 30) -> list[TaskNotice]:
    where = PlaybookTask.resolved_at.is_(None) & (func.lower(PlaybookTask.owner) == owner.lower())
    return _notices(session, where, limit)


def open_for_account(session: Session, account_id: int) -> list[TaskNotice]:
    where = PlaybookTask.resolved_at.is_(None) & (PlaybookTask.account_id == account_id)
    return _notices(session, where)


def cooldown_start(now: datetime, hours: float) -> datetime:
    return now - timedelta(hours=hours)
