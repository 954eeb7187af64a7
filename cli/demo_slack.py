"""The demo's Slack step: what the bot would post, rendered in the terminal and as Block Kit
Builder links (the brief, the owner's morning digest, their task DM), from the demo database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rich import box
from rich.table import Table
from sqlalchemy import select

from bot import task_views, views
from cli.render import money, tier_text, trend_text
from health import digests
from health.briefs import account_brief, freshness
from health.db import session_scope
from health.models import Account
from health.sentiment import stale_by_owner
from playbooks import notices


def slack_views(ctx) -> None:
    if ctx.shown_account is None:
        return
    now = datetime.combine(ctx.end + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    with session_scope(ctx.engine) as session:
        account = session.get(Account, ctx.shown_account.id)
        brief = account_brief(session=session, account=account, model=ctx.model)
        fresh = freshness(session=session)
        owner = (account.owner or "").lower()
        lines = digests.needing_attention(session=session).get(owner, [])
        ids = [x.account_id for x in lines]
        q = select(Account.id, Account.renewal_date).where(Account.id.in_(ids))
        renewals = dict(session.execute(q).all())
        stale = stale_by_owner(session=session, days=30, now=now, owner=owner).get(owner, [])
        tasks = notices.open_for_owner(session, owner, limit=task_views.MAX_TASKS) if owner else []
        account_tasks = notices.open_for_account(session, account.id)
    out = ctx.console
    brief_blocks = views.brief_blocks(
        brief, today=ctx.end, crm_url=None, freshness=fresh, now=now,
        tasks=task_views.task_lines(account_tasks, now=now),
    )  # fmt: skip
    out.print(f"  `/health {account.name}` answers with {len(brief_blocks)} blocks; see them:")
    out.print(f"  {views.block_kit_builder_url(brief_blocks)}", soft_wrap=True, highlight=False)
    if lines or stale:
        digest = views.digest_blocks(lines, day=ctx.end, renewals=renewals, stale=stale)
        out.print(f"\n  {owner}'s 09:00 digest: {len(lines)} accounts need them today")
        out.print(digest_table(lines))
        if stale:
            out.print(f"  + a reminder: sentiment to refresh on {len(stale)} accounts")
        out.print(f"  {views.block_kit_builder_url(digest)}", soft_wrap=True, highlight=False)
    if tasks:
        dm = task_views.task_message(tasks, now=now)
        out.print(f"\n  {owner}'s task DM ({len(tasks)} open tasks, Done / Snooze / Reassign):")
        for t in tasks[:5]:
            out.print(f"   • [{t.severity}] {t.account} — {t.title}", highlight=False)
        out.print(f"  {views.block_kit_builder_url(dm)}", soft_wrap=True, highlight=False)


def digest_table(lines) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for col, justify in [("account", "left"), ("score", "right"), ("tier", "left"),
                         ("30 days", "right"), ("ARR", "right")]:  # fmt: skip
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for x in lines[:8]:
        table.add_row(x.name, f"{x.total:.0f}", tier_text(x.tier), trend_text(x.trend_30d),
                      money(x.arr))  # fmt: skip
    if len(lines) > 8:
        table.add_row(f"and {len(lines) - 8} more", "", "", "", "")
    return table
