"""`/health`: ack at once, then answer through the command's response_url (ephemeral).

`/health ACCOUNT` a brief (several matches: a picker; none: the closest names), `/health`
the caller's own book (matched by their Slack profile's email), `/health help`."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from slack_bolt import App
from sqlmodel import Session

from bot import task_views, views
from bot.access import NOT_ALLOWED, may_see_briefs
from bot.context import BotContext
from bot.people import email_of
from health.accounts import AccountLookupError, resolve_account
from health.briefs import account_brief, book, freshness, nearest_names
from health.db import session_scope
from health.models import Account
from playbooks import notices

log = logging.getLogger(__name__)


def brief_message(ctx: BotContext, account_id: int, *, session: Session | None = None) -> dict:
    """The brief of one account as a message (blocks + fallback text); read in `session`
    when given (the one that just found the account: it is read again from its identity
    map, without a query), else in a transaction of its own."""
    if session is None:
        with session_scope(ctx.engine) as session:
            return brief_message(ctx, account_id, session=session)
    now = datetime.now(UTC)
    account = session.get(Account, account_id)
    if account is None or account.deleted_at is not None:  # merged or gone since
        return _said("That account is no longer there (linked into another, or deleted).")
    brief = account_brief(session=session, account=account, model=ctx.model)
    if brief is None:
        return _said(f"*{views.esc(account.name)}* has no score yet: no signal has come in.")
    fresh = freshness(session=session)
    tasks = notices.open_for_account(session, account_id)
    blocks = views.brief_blocks(
        brief,
        today=now.date(),
        crm_url=ctx.crm_url(brief),
        freshness=fresh,
        now=now,
        tasks=task_views.task_lines(tasks, now=now),
    )
    return {"text": brief.line.reason, "blocks": views.as_dicts(blocks)}


def _said(text: str) -> dict:
    return {"text": text, "blocks": views.as_dicts(views.note_blocks(text))}


def answer(ctx: BotContext, text: str, user_id: str, client) -> dict:
    """What `/health TEXT` shows `user_id`."""
    query = text.strip()
    if query.lower() == "help":
        return {"text": views.HELP, "blocks": views.as_dicts(views.help_blocks())}
    if not may_see_briefs(ctx, client, user_id):
        return _said(NOT_ALLOWED)
    if not query:
        email = email_of(client, user_id)
        with session_scope(ctx.engine) as session:
            lines = book(session=session, owner=email)
        blocks = views.book_blocks(email or "you", lines)
        return {"text": f"Your book: {len(lines)} accounts", "blocks": views.as_dicts(blocks)}
    with session_scope(ctx.engine) as session:  # one transaction: lookup and brief
        try:
            account = resolve_account(session=session, query=query)
        except AccountLookupError as exc:
            if exc.candidates:
                picks = [(a.id, a.name) for a in exc.candidates]
                blocks = views.picker_blocks(query, picks)
            else:
                blocks = views.not_found_blocks(query, nearest_names(session=session, name=query))
            return {"text": str(exc), "blocks": views.as_dicts(blocks)}
        return brief_message(ctx, account.id, session=session)


def register(app: App, ctx: BotContext) -> None:
    @app.command("/health")
    def handle_command_health(ack, command, respond, client) -> None:
        ack()  # within Slack's 3 s; the answer follows through the response_url
        respond(
            response_type="ephemeral",
            **answer(ctx, command.get("text", ""), command["user_id"], client),
        )
