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


def lookup(client: WebClient, email: str) -> tuple[str | None, str]:
    """(Slack user id, time zone) of the person with this email; (None, "UTC") when the
    workspace has no such person."""
    try:
        user = client.users_lookupByEmail(email=email)["user"]
    except SlackApiError as exc:
        if exc.response.get("error") == "users_not_found":
            return None, "UTC"
        raise
    return user["id"], user.get("tz") or "UTC"


def post(client: WebClient, channel: str, text: str, blocks: list[dict]) -> tuple[str, str]:
    """Post a message (a user id as channel: a DM from the app). Returns where it landed and
    its ts: (channel id, ts); for a DM that is the IM's id (D...), which chat.update needs and
    a click on the message names."""
    answer = client.chat_postMessage(channel=channel, text=text, blocks=blocks)
    return answer.get("channel") or channel, answer["ts"]


__all__ = ["SlackApiError", "SlackNotConfigured", "lookup", "post", "web_client", "whoami"]
