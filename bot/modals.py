"""The sentiment form: opened from a brief's button (views.open within the trigger's 3 s),
checked on submit (errors shown in the form), stored, and the account rescored at once; the
CSM gets a DM with the new score."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from slack_bolt import App

from bot import views
from bot.context import BotContext
from bot.ids import AccountValue, Action, Field
from bot.ids import View as ViewId
from bot.people import email_of
from health.db import session_scope
from health.models import Account
from health.rescore import rescore
from health.score_history import scores_as_of
from health.sentiment import may_log, parse, record_sentiment


def form_input(state: dict) -> tuple:
    """The submitted values, by field, from a view's state."""
    values = state.get("values", {})

    def field(name: Field) -> dict:
        return values.get(name, {}).get(name, {})

    rating = (field(Field.RATING).get("selected_option") or {}).get("value")
    direction = (field(Field.DIRECTION).get("selected_option") or {}).get("value")
    flags = [o["value"] for o in field(Field.FLAGS).get("selected_options") or []]
    return rating, direction, flags, field(Field.NOTE).get("value")


def register(app: App, ctx: BotContext) -> None:
    def allowed(client, user: str, account_id: int) -> tuple[bool, Account]:
        email = email_of(client, user)
        with session_scope(ctx.engine) as session:
            account = session.get(Account, account_id)
        if account is None:
            return False, None
        return may_log(email, owner=account.owner, managers=ctx.managers), account

    @app.action(re.compile(f"^{Action.LOG_SENTIMENT}(:|$)"))
    def handle_button_log_sentiment(ack, action, body, client, respond) -> None:
        ack()
        account_id = AccountValue.model_validate_json(action["value"]).account_id
        ok, account = allowed(client, body["user"]["id"], account_id)
        if account is None or account.deleted_at is not None:
            respond(
                response_type="ephemeral",
                replace_original=False,
                text="That account is no longer there (linked into another, or deleted).",
            )
            return
        if not ok:
            respond(response_type="ephemeral", replace_original=False, text=(
                f"Only {views.esc(account.owner or 'the account owner')} or a CS manager can "
                f"log sentiment for {views.esc(account.name)}."))  # fmt: skip
            return
        modal = views.sentiment_modal(account_id, account.name)
        client.views_open(trigger_id=body["trigger_id"], view=modal.to_dict())

    @app.view(ViewId.SENTIMENT)
    def handle_view_sentiment(ack, body, view, client) -> None:
        entry, errors = parse(*form_input(view["state"]))
        if errors:
            ack(response_action="errors", errors=errors)
            return
        account_id = AccountValue.model_validate_json(view["private_metadata"]).account_id
        user = body["user"]["id"]
        if not allowed(client, user, account_id)[0]:  # a forged or forwarded form
            ack(response_action="errors", errors={"rating": "You may not log sentiment here."})
            return
        ack()
        now = datetime.now(UTC)
        with session_scope(ctx.engine) as session:
            record_sentiment(session=session, account_id=account_id, entry=entry, author=user,
                             now=now)  # fmt: skip
        report = rescore(ctx.engine, ctx.model, day=now.date(), account_ids=[account_id],
                         targets=ctx.crm_targets)  # fmt: skip
        with session_scope(ctx.engine) as session:
            name = session.get(Account, account_id).name
            score = scores_as_of(session=session, ids=[account_id], lo=None, hi=None)
        text = f"Logged {entry.rating}/5 for {views.esc(name)}."
        if report.scored and account_id in score:  # a former customer is not scored any more
            text += f" Its score is now {score[account_id].total:.0f}."
        client.chat_postMessage(channel=user, text=text)
