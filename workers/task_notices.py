"""Tell people about their playbook tasks in Slack: one DM per person bundling every task
waiting to be told (opened, escalated to them, back from a snooze), each with Done, Snooze
and Reassign. Beat runs this every minute.

No alert fatigue: in a person's quiet hours (SLACK_QUIET_HOURS, their own time zone) only
high-severity tasks go out; an account that pinged a person within SLACK_COOLDOWN_HOURS waits
(unless the task is high severity). Never lost: a task leaves the queue only when Slack took
the message; a failed post (an error, a 429 past the client's retries) stays queued for the
next run. Tasks nobody in Slack holds (no owner, or an owner Slack does not know) go to the CS
managers' channel (SLACK_DIGEST_CHANNEL), where a manager can Reassign them. A playbook's
`alert_channel` gets a line about each task it opens, once (an "alerted" audit event)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.engine import Engine

from bot import task_views, views
from bot.delivery import SlackApiError, lookup, post, web_client
from health import digests
from health.db import session_scope
from health.settings import Settings
from playbooks import notices
from playbooks.notices import TaskNotice
from workers.digests import local

ALERT_WINDOW = timedelta(days=3)  # a task opened longer ago than this is not announced any more


@dataclass
class NoticeReport:
    sent: dict[str, int] = field(default_factory=dict)  # Slack user -> tasks in the message
    quiet: int = 0  # tasks waiting for the end of someone's quiet hours
    cooling: int = 0  # tasks waiting for an account's cooldown
    not_in_slack: list[str] = field(default_factory=list)  # owner emails
    failed: dict[str, str] = field(default_factory=dict)  # recipient -> Slack's error
    alerts: int = 0  # channel alerts posted


def quiet_hours(spec: str) -> tuple[int, int] | None:
    """'20-8' -> (20, 8); '' or 'off' -> None. ValueError for anything else."""
    if not spec or spec.strip().lower() == "off":
        return None
    start, _, end = spec.partition("-")
    hours = int(start), int(end)
    if not all(0 <= h < 24 for h in hours):
        raise ValueError(f"SLACK_QUIET_HOURS {spec!r}: write START-END hours, e.g. 20-8")
    return hours


def is_quiet(hour: int, hours: tuple[int, int] | None) -> bool:
    if hours is None:
        return False
    start, end = hours
    return start <= hour < end if start < end else hour >= start or hour < end


def deliver_tasks(engine: Engine, settings: Settings, *, now: datetime) -> NoticeReport:
    client, report = web_client(settings), NoticeReport()
    hush = quiet_hours(settings.slack_quiet_hours)
    with session_scope(engine) as session:
        by_owner = notices.pending(session)
        emails = [e for e in by_owner if e]
        users = digests.cached_users(session=session, emails=emails, now=now)
    found = {e: lookup(client, e) for e in emails if e not in users}
    if found:
        with session_scope(engine) as session:
            digests.remember_users(session=session, found=found, now=now)
    people = {e: (u.slack_user_id, u.tz) for e, u in users.items()} | found
    since = notices.cooldown_start(now, settings.slack_cooldown_hours)
    with session_scope(engine) as session:  # one read for everyone's cooldowns
        pending = [t for tasks in by_owner.values() for t in tasks]
        told = notices.recently_told(session, tasks=pending, since=since)
    unheld: list[TaskNotice] = []  # nobody in Slack holds them
    for email, tasks in by_owner.items():
        uid, tz = people.get(email, (None, "UTC"))
        if uid is None:
            report.not_in_slack += [email] if email else []
            unheld += tasks
            continue
        if is_quiet(local(now, tz).hour, hush):
            report.quiet += sum(1 for t in tasks if t.severity != "high")
            tasks = [t for t in tasks if t.severity == "high"]
        cooling = [t for t in tasks if (email, t.account_id) in told and t.severity != "high"]
        report.cooling += len(cooling)
        tasks = [t for t in tasks if t not in cooling]
        if tasks:
            _tell(engine, client, report, uid, tasks, now=now)
    if unheld and settings.slack_digest_channel:  # the CS managers' channel takes them
        unheld.sort(key=lambda t: t.sort_key)
        intro = task_views.unheld_intro(unheld, report.not_in_slack)
        title = task_views.unheld_title(unheld)
        _tell(engine, client, report, settings.slack_digest_channel, unheld, now=now,
              title=title, intro=intro)  # fmt: skip
    _announce(engine, client, report, now=now)
    return report


def _tell(engine, client, report, to: str, tasks, *, now, title=None, intro=None) -> None:
    """One message about up to MAX_TASKS tasks (the rest go in the next); they leave the queue
    only once Slack took it."""
    shown = tasks[: task_views.MAX_TASKS]
    title = title or task_views.title_of(shown)
    blocks = views.as_dicts(task_views.task_message(shown, now=now, title=title, intro=intro))
    try:
        channel, ts = post(client, to, title, blocks)
    except (SlackApiError, OSError) as exc:  # stays queued: the next run tries again
        report.failed[to] = _error(exc)
        return
    with session_scope(engine) as session:
        notices.mark_sent(session, ids=[t.id for t in shown], channel=channel, ts=ts, now=now)
    report.sent[to] = len(shown)


def _announce(engine, client, report, *, now) -> None:
    """Each playbook's alert channel hears once about each task it opened (in the last
    ALERT_WINDOW), whether or not its owner has been told yet; a failed post is tried again."""
    with session_scope(engine) as session:
        due = notices.alerts_due(session, since=now - ALERT_WINDOW)
    for channel, tasks in due.items():
        shown = tasks[: task_views.MAX_ALERTS]  # the rest in the next run: only these are marked
        blocks = views.as_dicts(task_views.alert_blocks(shown))
        try:
            post(client, channel, f"{len(shown)} new playbook tasks", blocks)
        except (SlackApiError, OSError) as exc:
            report.failed[channel] = _error(exc)
            continue
        with session_scope(engine) as session:
            notices.mark_alerted(session, ids=[t.id for t in shown], channel=channel, now=now)
        report.alerts += 1


def _error(exc: Exception) -> str:
    error = exc.response.get("error") if isinstance(exc, SlackApiError) else None
    return str(error or exc)
