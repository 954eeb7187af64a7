"""App Home: opened, it shows the CSM's book by tier and where sentiment is stale."""

from __future__ import annotations

from datetime import UTC, datetime

from slack_bolt import App, BoltResponse

from bot import task_views, views
from bot.context import BotContext
from bot.people import email_of
from health.briefs import book
from health.db import session_scope
from health.sentiment import first_time, stale_sentiment
from playbooks import notices


def register(app: App, ctx: BotContext) -> None:
    @app.middleware
    def skip_replayed_events(body, next):  # noqa: A002 - Bolt's name
        """Slack retries an event it thinks was lost; one event id is handled once."""
        event_id = body.get("event_id") if isinstance(body, dict) else None
        if event_id:
            with session_scope(ctx.engine) as session:
                if not first_time(session=session, event_id=event_id, now=datetime.now(UTC)):
                    return BoltResponse(status=200, body="")
        return next()

    @app.event("app_home_opened")
    def handle_event_app_home_opened(event, client) -> None:
        if event.get("tab", "home") != "home":
            return
        user = event["user"]
        email = email_of(client, user)
        now = datetime.now(UTC)
        with session_scope(ctx.engine) as session:
            lines = book(session=session, owner=email)
            stale = stale_sentiment(session=session, owner=email, days=ctx.stale_days, now=now)
            tasks = notices.open_for_owner(session, email) if email else []
        view = views.home_view(
            email or "you", lines, stale, ctx.stale_days, task_views.task_lines(tasks, now=now)
        )
        client.views_publish(user_id=user, view=view.to_dict())
