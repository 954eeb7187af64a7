"""Tell people about their playbook tasks in Slack: one DM per person bundling every task
waiting to be told (opened, escalated to them, back from a snooze), each with Done, Snooze
and Reassign. Beat runs this every minute.

No alert fatigue: in a person's quiet hours (SLACK_QUIET_HOURS, their own time zone) only
high-severity tasks go out; an account that pinged a person within SLACK_COOLDOWN_HOURS waits
(unless the task is high severity). Never lost: a task leaves the queue only when Slack took
the message; a failed post (an error, a 429 past the client's retries) stays queued for the
next run. A playbook's `alert_channel` also gets a line about each task it opens."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.engine import Engine

from bot import task_views, views
from bot.delivery import SlackApiError, lookup, post, web_client
from health import digests
from health.db import session_scope
from health.settings import Settings
from playbooks import notices
from workers.digests import local


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
        users = digests.cached_users(session=session, emails=by_owner, now=now)
    found = {e: lookup(client, e) for e in by_owner if e not in users}
    if found:
        with session_scope(engine) as session:
            digests.remember_users(session=session, found=found, now=now)
    people = {e: (u.slack_user_id, u.tz) for e, u in users.items()} | found
    since = notices.cooldown_start(now, settings.slack_cooldown_hours)
    with session_scope(engine) as session:  # one read for everyone's cooldowns
        pending = [t for tasks in by_owner.values() for t in tasks]
        told = notices.recently_told(session, tasks=pending, since=since)
    alerts: dict[str, list] = {}
    for email, tasks in by_owner.items():
        uid, tz = people[email]
        if uid is None:
            report.not_in_slack.append(email)
            continue
        if is_quiet(local(now, tz).hour, hush):
            report.quiet += sum(1 for t in tasks if t.severity != "high")
            tasks = [t for t in tasks if t.severity == "high"]
        cooling = [t for t in tasks if (uid, t.account_id) in told and t.severity != "high"]
        report.cooling += len(cooling)
        tasks = [t for t in tasks if t not in cooling]
        if not tasks:
            continue
        shown = tasks[: task_views.MAX_TASKS]  # the rest go in the next message
        blocks = views.as_dicts(task_views.task_message(shown, now=now))
        try:
            ts = post(client, uid, task_views.title_of(shown), blocks)
        except (SlackApiError, OSError) as exc:  # stays queued: the next run tries again
            error = exc.response.get("error") if isinstance(exc, SlackApiError) else None
            report.failed[uid] = str(error or exc)
            continue
        with session_scope(engine) as session:
            notices.mark_sent(session, ids=[t.id for t in shown], channel=uid, ts=ts, now=now)
        report.sent[uid] = len(shown)
        for t in shown:
            if t.alert_channel and t.notified_at is None and t.escalation_level == 0:
                alerts.setdefault(t.alert_channel, []).append(t)
    for channel, tasks in alerts.items():
        blocks = views.as_dicts(task_views.alert_blocks(tasks, now=now))
        try:
            post(client, channel, f"{len(tasks)} new playbook tasks", blocks)
            report.alerts += 1
        except (SlackApiError, OSError) as exc:
            error = exc.response.get("error") if isinstance(exc, SlackApiError) else None
            report.failed[channel] = str(error or exc)
    return report
