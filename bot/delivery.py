"""The one module that talks to Slack's Web API from outside a request: a client built from
settings (SLACK_API_URL, Retry-After honoured), used by the app and by workers."""

from __future__ import annotations

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

from health.settings import Settings


class SlackNotConfigured(ValueError):
    """A Slack variable the bot cannot start without."""


def web_client(settings: Settings, *, timeout: int = 30) -> WebClient:
    if settings.slack_bot_token is None:
        raise SlackNotConfigured("set SLACK_BOT_TOKEN (the app's xoxb- bot token)")
    client = WebClient(
        token=settings.slack_bot_token.get_secret_value(),
        base_url=settings.slack_api_url,
        timeout=timeout,
    )
    client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=3))  # Retry-After
    return client


def whoami(settings: Settings) -> str:
    """Who the token is (auth.test): 'bot on team T…'; SlackApiError names Slack's error."""
    answer = web_client(settings, timeout=8).auth_test()
    return f"authenticated as {answer.get('user_id') or 'the bot'} on team {answer.get('team_id')}"


__all__ = ["SlackApiError", "SlackNotConfigured", "web_client", "whoami"]
