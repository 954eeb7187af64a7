"""`build_app()`: the Bolt app, its listeners registered per module. No global app, nothing
done at import; every Web API call goes through one client on SLACK_API_URL."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

from slack_bolt import App
from slack_sdk import WebClient
from sqlalchemy.engine import Engine

from bot import actions, commands, home, modals, responses, tasks
from bot.context import BotContext
from bot.delivery import SlackNotConfigured, web_client
from health.db import get_engine
from health.scoring.model import ScoringModel, load_model
from health.settings import Settings

log = logging.getLogger(__name__)
LISTENER_THREADS = 64
# database connections kept open: a burst of commands (20 at once in bench/slack.py) answers
# on open connections; SQLAlchemy's default of 5 closed and reopened the rest for each command
DB_POOL = 20


def check_settings(settings: Settings) -> None:
    """SlackNotConfigured, saying what to set, when the app cannot start."""
    if settings.slack_signing_secret is None:
        raise SlackNotConfigured("set SLACK_SIGNING_SECRET (Basic Information → Signing Secret)")
    if settings.slack_bot_token is None:
        raise SlackNotConfigured("set SLACK_BOT_TOKEN (the app's xoxb- bot token)")


def build_app(
    settings: Settings,
    *,
    client: WebClient | None = None,
    engine: Engine | None = None,
    model: ScoringModel | None = None,
) -> App:
    if settings.slack_signing_secret is None:
        check_settings(settings)
    app = App(
        client=client or web_client(settings),
        signing_secret=settings.slack_signing_secret.get_secret_value(),
        process_before_response=False,  # ack() answers Slack; the work goes on after
        # a listener acks as soon as it starts: enough threads that a burst of commands waiting
        # on slow lookups never keeps Slack past its 3 s (Bolt's default is 5)
        listener_executor=ThreadPoolExecutor(
            max_workers=LISTENER_THREADS, thread_name_prefix="bolt"
        ),
    )
    ctx = BotContext(
        engine=engine or get_engine(settings.database_url, pool_size=DB_POOL),
        model=model
        or load_model(settings.healthbot_model, min_confidence=settings.healthbot_min_confidence),
        salesforce_url=settings.salesforce_instance_url,
        managers=tuple(settings.slack_managers),
        stale_days=settings.sentiment_stale_days,
        viewers=tuple(settings.slack_brief_viewers),
    )
    home.register(app, ctx)  # first: its middleware drops replayed events
    responses.register(app, pool=LISTENER_THREADS)
    commands.register(app, ctx)
    actions.register(app, ctx)
    modals.register(app, ctx)
    tasks.register(app, ctx)

    @app.error
    def handle_error(error, body, respond) -> None:
        log.error("slack listener failed: %s", type(error).__name__, exc_info=error)
        if body.get("response_url"):
            respond(
                response_type="ephemeral",
                text="Something went wrong on healthbot's side; the team has the details.",
            )

    return app
