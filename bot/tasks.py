"""A task DM's buttons: Done, Snooze (1 day, 3 days, 1 week), Reassign (a user picker). The
task's owner or a CS manager may act; the message is re-rendered in place from the tasks it
shows; every action lands in the task's audit log. Slack retries of one click change nothing
(the UPDATE only touches a live task and says so)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from slack_bolt import App

from bot import task_views, views
from bot.context import BotContext
from bot.ids import Action, TaskValue
from bot.people import email_of
from health.db import session_scope
from playbooks import notices
from playbooks.actions import act

SNOOZE = {"1d": timedelta(days=1), "3d": timedelta(days=3), "1w": timedelta(weeks=1)}


def register(app: App, ctx: BotContext) -> None:
    def handle(body, client, respond, task_id: int, action: str, **options) -> None:
        user = body["user"]["id"]
        now = datetime.now(UTC)
        with session_scope(ctx.engine) as session:
            task = notices.task(session, task_id)
        if task is None:
            respond(response_type="ephemeral", replace_original=False,
                    text="That task is no longer there.")  # fmt: skip
            return
        email = email_of(client, user)
        managers = {m.lower() for m in ctx.managers}
        owner = email and email == (task.owner or "").lower()  # no email: nobody's owner
        if not owner and email not in managers:
            respond(response_type="ephemeral", replace_original=False, text=(
                f"Only {views.esc(task.owner or 'its owner')} or a CS manager can change this "
                "task."))  # fmt: skip
            return
        if action == "reassign":
            options["owner"] = email_of(client, options.pop("user")) or None
        with session_scope(ctx.engine) as session:
            result = act(session, task_id, action=action, actor=user, now=now, **options)
        if not result.ok:
            respond(response_type="ephemeral", replace_original=False, text=result.message)
        _rerender(client, body)

    def _rerender(client, body) -> None:
        channel = (body.get("container") or {}).get("channel_id") or body["channel"]["id"]
        ts = (body.get("container") or {}).get("message_ts") or body["message"]["ts"]
        with session_scope(ctx.engine) as session:
            shown = notices.in_message(session, channel=channel, ts=ts)
        if not shown:
            return
        now = datetime.now(UTC)
        title, intro = task_views.title_of(shown), None
        if not channel.startswith("D"):  # not a DM: the managers' channel's unheld tasks
            title, intro = task_views.unheld_title(shown), task_views.UNHELD_NOTE
        blocks = task_views.task_message(shown, now=now, title=title, intro=intro)
        client.chat_update(channel=channel, ts=ts, text=title, blocks=views.as_dicts(blocks))

    @app.action(re.compile(f"^{Action.TASK_DONE}:"))
    def handle_button_task_done(ack, action, body, client, respond) -> None:
        ack()
        task_id = TaskValue.model_validate_json(action["value"]).task_id
        handle(body, client, respond, task_id, "done")

    @app.action(re.compile(f"^{Action.TASK_SNOOZE}:"))
    def handle_select_task_snooze(ack, action, body, client, respond) -> None:
        ack()
        task_id, _, span = action["selected_option"]["value"].partition(":")
        until = datetime.now(UTC) + SNOOZE.get(span, SNOOZE["1d"])
        handle(body, client, respond, int(task_id), "snooze", until=until)

    @app.action(re.compile(f"^{Action.TASK_REASSIGN}:"))
    def handle_select_task_reassign(ack, action, body, client, respond) -> None:
        ack()
        task_id = int(action["action_id"].partition(":")[2])
        handle(body, client, respond, task_id, "reassign", user=action["selected_user"])
