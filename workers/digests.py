"""The daily at-risk digest: at 09:00 in each CSM's own time zone, a DM of their accounts
that need attention; the digest channel gets the managers' roll-up at 09:00 UTC. Beat runs
this every 15 minutes; each recipient gets one digest a day however often it runs (the day
is claimed before the post, and given back when the post fails, to be retried)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.engine import Engine

from bot import views
from bot.delivery import SlackApiError, lookup, post, web_client
from health import digests
from health.db import session_scope
from health.models import Account
from health.repo import chunked
from health.sentiment import stale_by_owner
from health.settings import Settings
from playbooks.reads import report_inputs
from playbooks.report import playbook_report

HOUR = 9  # local time the digest goes out


@dataclass
class DigestReport:
    sent: list[str] = field(default_factory=list)  # recipients
    waiting: int = 0  # not yet 09:00 where they are
    not_in_slack: list[str] = field(default_factory=list)  # owner emails
    failed: dict[str, str] = field(default_factory=dict)  # recipient -> Slack's error


def local(now: datetime, tz: str) -> datetime:
    try:
        return now.astimezone(ZoneInfo(tz))
    except (ZoneInfoNotFoundError, ValueError):
        return now


def send_digests(engine: Engine, settings: Settings, *, now: datetime) -> DigestReport:
    client, report = web_client(settings), DigestReport()
    with session_scope(engine) as session:
        by_owner = digests.needing_attention(session=session)
        stale = stale_by_owner(session=session, days=settings.sentiment_stale_days, now=now)
        users = digests.cached_users(session=session, emails=set(by_owner) | set(stale), now=now)
        ids = [x.account_id for lines in by_owner.values() for x in lines]
        renewals = {}
        for part in chunked(ids):
            q = select(Account.id, Account.renewal_date).where(Account.id.in_(part))
            renewals.update(session.execute(q).all())
    recipients = sorted(set(by_owner) | set(stale))
    found = {e: lookup(client, e) for e in recipients if e not in users}  # cached after
    if found:
        with session_scope(engine) as session:
            digests.remember_users(session=session, found=found, now=now)
    people = {e: (u.slack_user_id, u.tz) for e, u in users.items()} | found
    for email in recipients:
        lines = by_owner.get(email, [])
        uid, tz = people[email]
        if uid is None:
            report.not_in_slack.append(email)
            continue
        when = local(now, tz)
        if when.hour < HOUR:
            report.waiting += 1
            continue
        blocks = views.digest_blocks(lines, day=when.date(), renewals=renewals,
                                     stale=stale.get(email, ()),
                                     stale_days=settings.sentiment_stale_days)  # fmt: skip
        text = f"{len(lines)} accounts need you" if lines else "Sentiment to refresh"
        _deliver(engine, client, report, uid, when, views.as_dicts(blocks), text)
    channel = settings.slack_digest_channel
    if channel and now.hour >= HOUR and not _taken(engine, f"channel:{channel}", now):
        blocks = views.as_dicts(
            views.rollup_blocks(by_owner, day=now.date(), playbooks=playbook_line(engine, now))
        )
        _deliver(engine, client, report, channel, now, blocks, "Accounts needing attention",
                 recipient=f"channel:{channel}")  # fmt: skip
    return report


def _taken(engine: Engine, recipient: str, now: datetime) -> bool:
    with session_scope(engine) as session:
        return digests.taken(session=session, recipient=recipient, day=now.date())


def playbook_line(engine: Engine, now: datetime) -> str:
    """Save rate and overdue tasks over the last 180 days, for the managers."""
    with session_scope(engine) as session:
        tasks, green = report_inputs(session, since=now - timedelta(days=180))
    if not tasks:
        return ""
    _rows, m = playbook_report(tasks, green, now)
    saved = f"{m.save_rate:.0%} of {m.save_cases}" if m.save_rate is not None else "—"
    overdue = f"{m.overdue_rate:.0%}" if m.overdue_rate is not None else "—"
    return (
        f":clipboard: Playbooks, last 180 days: {m.tasks} tasks, {m.open} open · "
        f"saved (red → green in 90 days) {saved} · overdue {overdue} · "
        "`healthbot playbooks report` has the detail"
    )


def _deliver(engine, client, report, channel, when, blocks, text, *, recipient=None) -> None:
    recipient = recipient or channel
    with session_scope(engine) as session:
        if not digests.claim(session=session, recipient=recipient, day=when.date(), now=when):
            return  # sent already today (or being sent by another worker)
    try:
        where, ts = post(client, channel, text, blocks)
    except (SlackApiError, OSError) as exc:  # given back: the next tick tries again
        with session_scope(engine) as session:
            digests.release(session=session, recipient=recipient, day=when.date())
        error = exc.response.get("error") if isinstance(exc, SlackApiError) else None
        report.failed[recipient] = str(error or exc)
        return
    with session_scope(engine) as session:
        digests.sent(session=session, recipient=recipient, day=when.date(), channel=where, ts=ts)
    report.sent.append(recipient)
