"""Buttons: pick one account of several, share a brief in the channel."""

from __future__ import annotations

import re

from slack_bolt import App

from bot.access import NOT_ALLOWED, may_see_briefs
from bot.commands import brief_message
from bot.context import BotContext
from bot.ids import AccountValue, Action


def register(app: App, ctx: BotContext) -> None:
    def refused(body, client, respond) -> bool:
        if may_see_briefs(ctx, client, body["user"]["id"]):
            return False
        respond(response_type="ephemeral", replace_original=False, text=NOT_ALLOWED)
        return True

    @app.action(re.compile(f"^{Action.PICK_ACCOUNT}:"))
    def handle_button_pick_account(ack, action, body, client, respond) -> None:
        ack()
        if refused(body, client, respond):
            return
        picked = AccountValue.model_validate_json(action["value"])
        respond(replace_original=True, **brief_message(ctx, picked.account_id))

    @app.action(re.compile(f"^{Action.SHOW_BRIEF}:"))
    def handle_button_show_brief(ack, action, body, client, respond) -> None:
        ack()
        if refused(body, client, respond):
            return
        shown = AccountValue.model_validate_json(action["value"])
        respond(replace_original=False, **brief_message(ctx, shown.account_id))

    @app.action(Action.SHARE_BRIEF)
    def handle_button_share_brief(ack, action, body, client, respond) -> None:
        ack()
        if refused(body, client, respond):
            return
        shared = AccountValue.model_validate_json(action["value"])
        respond(
            response_type="in_channel",
            replace_original=False,
            **brief_message(ctx, shared.account_id),
        )

    @app.action(Action.OPEN_IN_CRM)
    def handle_button_open_in_crm(ack) -> None:
        ack()  # a link button: the browser opens the CRM; Slack still expects an ack
