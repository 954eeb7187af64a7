"""App Home through the Events API: a signed event publishes the CSM's book; Slack's retry of
the same event id does nothing more; the URL check is answered."""

from __future__ import annotations

import json
import time

import requests

from tests.bot.test_health_command import signed, slack  # noqa: F401


def event(url: str, event_id: str, *, retry: int | None = None) -> requests.Response:
    body = json.dumps({
        "token": "x", "team_id": "T0SANDBOX", "api_app_id": "A1", "type": "event_callback",
        "event_id": event_id, "event_time": int(time.time()),
        "event": {"type": "app_home_opened", "user": "U1", "channel": "D1", "tab": "home",
                  "event_ts": "1.1"},
    })  # fmt: skip
    headers = signed(body) | {"Content-Type": "application/json"}
    if retry is not None:
        headers |= {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
    return requests.post(url, data=body, headers=headers, timeout=5)


def published(fake, n: int) -> list[dict]:
    deadline = time.monotonic() + 10
    while len(fake.called("views.publish")) < n:
        assert time.monotonic() < deadline, fake.calls
        time.sleep(0.02)
    return fake.called("views.publish")


def test_app_home_shows_the_book_once_per_event(slack):  # noqa: F811
    fake, url = slack
    assert event(url, "Ev1").status_code == 200
    (home,) = published(fake, 1)
    assert home["user_id"] == "U1" and home["view"]["type"] == "home"
    text = json.dumps(home["view"]["blocks"], ensure_ascii=False)
    assert "Acme Corp" in text and "&lt;!channel&gt; Inc" in text
    assert "Sentiment to refresh" in text  # nothing logged yet for dana's accounts
    assert event(url, "Ev1", retry=1).status_code == 200  # Slack's retry of the same event
    assert event(url, "Ev2").status_code == 200  # a new opening
    published(fake, 2)
    time.sleep(0.3)
    assert len(fake.called("views.publish")) == 2


def test_the_url_check_is_answered(slack):  # noqa: F811
    _, url = slack
    body = json.dumps({"token": "x", "challenge": "c-123", "type": "url_verification"})
    headers = signed(body) | {"Content-Type": "application/json"}
    resp = requests.post(url, data=body, headers=headers, timeout=5)
    assert resp.status_code == 200 and "c-123" in resp.text
