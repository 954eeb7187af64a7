"""Who may see briefs (SLACK_BRIEF_VIEWERS): listed emails, user ids and user groups (members
read from Slack, cached), and CS managers; anyone else gets a clear refusal and no account data,
from the command and from the brief buttons alike."""

from __future__ import annotations

import threading

import pytest

from bot import access
from bot.app import build_app
from bot.server import PATH, make_server
from connectors.sandbox.slack_api import TOKEN, start_slack_sandbox
from health.settings import Settings
from tests.bot.test_health_command import MODEL, SECRET, answer, click, command, seed, text_of

PEOPLE = {
    "U1": {"email": "dana@x.test"},
    "U2": {"email": "eve@x.test"},
    "U3": {"email": "sam@x.test"},
    "U4": {"email": "boss@x.test"},
}


@pytest.fixture
def slack(pg_engine):
    seed(pg_engine)
    access._groups.clear()
    with start_slack_sandbox(PEOPLE, groups={"S0CS": ["U3"]}) as fake:
        settings = Settings(
            _env_file=None,
            slack_bot_token=TOKEN,
            slack_signing_secret=SECRET,
            slack_api_url=fake.url,
            slack_brief_viewers=["dana@x.test", "S0CS"],
            slack_managers=["boss@x.test"],
        )
        app = build_app(settings, engine=pg_engine, model=MODEL)
        server = make_server(app, "127.0.0.1", 0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        yield fake, f"http://127.0.0.1:{server.server_address[1]}{PATH}"
        server.shutdown()


@pytest.mark.parametrize(("user", "allowed"), [("U1", True), ("U3", True), ("U4", True),
                                               ("U2", False)])  # fmt: skip
def test_only_listed_people_groups_and_managers_see_briefs(slack, user, allowed):
    fake, url = slack
    _, _, rid = command(fake, url, "acme corp", user=user)
    (shown,) = answer(fake, rid)
    text = text_of(shown)
    if allowed:
        assert "/ 100 — " in text and "Acme Corp" in text
    else:
        assert "SLACK_BRIEF_VIEWERS" in text and "Acme Corp" not in text and "/ 100" not in text


def test_a_refused_user_gets_nothing_from_a_brief_button_either(slack):
    fake, url = slack
    _, _, rid = command(fake, url, "acme", user="U1")  # dana may: a picker
    (picker,) = answer(fake, rid)
    button = next(e for b in picker["blocks"] if b["type"] == "actions" for e in b["elements"])
    rid2 = fake.response_url()
    click(url, button, rid2, user="U2")  # a forwarded message, clicked by eve
    (said,) = answer(fake, rid2.rsplit("/", 1)[1])
    assert "SLACK_BRIEF_VIEWERS" in said["text"] and "blocks" not in said


def test_group_members_are_read_once_and_cached(slack):
    fake, url = slack
    for _ in range(3):
        _, _, rid = command(fake, url, "acme corp", user="U3")
        answer(fake, rid)
    assert len(fake.called("usergroups.users.list")) == 1
