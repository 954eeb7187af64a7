"""A Slack user's email is looked up once (users.info) and kept for a few minutes, per
workspace: clicks and commands do not each cost a Web API call."""

from __future__ import annotations

from slack_sdk import WebClient

from bot.people import email_of
from connectors.sandbox.slack_api import TOKEN, start_slack_sandbox


def test_an_email_is_looked_up_once_per_workspace():
    people = {"U1": {"email": "Dana@X.test"}, "U2": {"email": ""}}
    with start_slack_sandbox(people) as one, start_slack_sandbox({"U1": {"email": "z@y"}}) as two:
        first = WebClient(token=TOKEN, base_url=one.url)
        assert [email_of(first, "U1") for _ in range(3)] == ["dana@x.test"] * 3
        assert email_of(first, "U2") == ""  # no email in the profile
        assert len(one.called("users.info")) == 2  # U1 once, U2 once
        other = WebClient(token=TOKEN, base_url=two.url)  # another workspace: its own answer
        assert email_of(other, "U1") == "z@y" and len(two.called("users.info")) == 1
