"""`/health` as Slack sends it: signed HTTP requests into the running app, its answers read
back from a local fake of Slack's Web API and response_urls (methods checked against Slack's
published spec). Forged or stale requests get 401 and do nothing."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlencode

import pytest
import requests

from bot.app import build_app
from bot.server import PATH, make_server
from connectors.sandbox.slack_api import TOKEN, start_slack_sandbox
from health.db import session_scope
from health.records import AccountRecord, AccountRef, Batch, ObservationRecord
from health.repo import store_batch
from health.rescore import rescore
from health.scoring.model import load_model
from health.settings import DEFAULT_MODEL_PATH, Settings

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
MODEL = load_model(DEFAULT_MODEL_PATH)
TODAY = datetime.now(UTC).date()
NAMES = [
    ("001A", "Acme Corp", "acme.com", "dana@x.test"),
    ("001B", "Acme Labs", "acmelabs.io", "lee@x.test"),
    ("001C", "<!channel> Inc", "ping.test", "dana@x.test"),
    ("001D", "Northwind", "northwind.test", "lee@x.test"),
]


def seed(engine) -> None:
    at = datetime.combine(TODAY, datetime.min.time(), tzinfo=UTC)
    obs = []
    for k, (ext, *_rest) in enumerate(NAMES):
        for d in range(40):
            when = at - timedelta(days=d)
            obs.append(ObservationRecord(AccountRef(crm_id=ext), "active_users", when,
                                         40 + 10 * k - (d < 10) * 5 * k, "product"))  # fmt: skip
            obs.append(ObservationRecord(AccountRef(crm_id=ext), "seats", when, 80, "salesforce"))
            # usage and adoption: half the model, enough for a tier
            obs.append(ObservationRecord(AccountRef(crm_id=ext), "core_features_used", when, 4,
                                         "product"))  # fmt: skip
            obs.append(ObservationRecord(AccountRef(crm_id=ext), "key_events", when, 300,
                                         "product"))  # fmt: skip
    records = [
        AccountRecord("salesforce", ext, name, dom, owner=owner, renewal_date=date(2027, 2, 14))
        for ext, name, dom, owner in NAMES
    ]
    with session_scope(engine) as s:
        batch = Batch(accounts=records, observations=obs)
        store_batch(session=s, source="salesforce", batch=batch, now=at)
    rescore(engine, MODEL, day=TODAY)


@pytest.fixture
def slack(pg_engine):
    seed(pg_engine)
    with start_slack_sandbox({"U1": {"email": "dana@x.test"}, "U2": {"email": "x@y.test"}}) as fake:
        settings = Settings(
            _env_file=None,
            slack_bot_token=TOKEN,
            slack_signing_secret=SECRET,
            slack_api_url=fake.url,
            salesforce_instance_url="https://acme.my.salesforce.com",
        )
        app = build_app(settings, engine=pg_engine, model=MODEL)
        server = make_server(app, "127.0.0.1", 0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        yield fake, f"http://127.0.0.1:{server.server_address[1]}{PATH}"
        server.shutdown()


def signed(body: str, *, ts: int | None = None, secret: str = SECRET) -> dict:
    ts = int(time.time()) if ts is None else ts
    digest = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": str(ts),
        "X-Slack-Signature": f"v0={digest}",
        "Content-Type": "application/x-www-form-urlencoded",
    }


def command(fake, url: str, text: str, *, user: str = "U1", **sign) -> tuple:
    response_url = fake.response_url()
    body = urlencode({
        "token": "x", "team_id": "T0SANDBOX", "channel_id": "C1", "user_id": user,
        "command": "/health", "text": text, "response_url": response_url,
        "trigger_id": "1.2.abc", "api_app_id": "A1",
    })  # fmt: skip
    started = time.monotonic()
    resp = requests.post(url, data=body, headers=signed(body, **sign), timeout=5)
    return resp, time.monotonic() - started, response_url.rsplit("/", 1)[1]


def click(url: str, button: dict, response_url: str, *, user: str = "U1") -> requests.Response:
    """A signed block_actions request: `user` clicked `button` of a message."""
    payload = {
        "type": "block_actions", "user": {"id": user}, "team": {"id": "T0SANDBOX"},
        "api_app_id": "A1", "trigger_id": "1.2.abc", "container": {"type": "message"},
        "channel": {"id": "C1"}, "response_url": response_url,
        "actions": [{**button, "type": "button", "block_id": "b1", "action_ts": "1"}],
    }  # fmt: skip
    body = urlencode({"payload": json.dumps(payload)})
    return requests.post(url, data=body, headers=signed(body), timeout=5)


def answer(fake, rid: str, n: int = 1, timeout: float = 10) -> list[dict]:
    deadline = time.monotonic() + timeout
    while len(fake.responses[rid]) < n:
        assert time.monotonic() < deadline, f"no answer on the response_url: {fake.calls}"
        time.sleep(0.02)
    return fake.responses[rid]


def text_of(message: dict) -> str:
    return json.dumps(message["blocks"], ensure_ascii=False)


def test_health_acme_corp_answers_with_the_brief_after_acking_at_once(slack):
    fake, url = slack
    resp, seconds, rid = command(fake, url, "acme corp")
    assert resp.status_code == 200 and seconds < 3
    (brief,) = answer(fake, rid)
    assert brief["response_type"] == "ephemeral"
    blocks = brief["blocks"]
    assert blocks[0] == {"type": "header", "text": {"type": "plain_text", "text": "Acme Corp",
                                                     "emoji": True}}  # fmt: skip
    shown = text_of(brief)
    assert "owner dana@x.test" in shown and "renewal 14 Feb 2027" in shown
    assert "/ 100 — " in shown and "confidence" in shown
    assert "lightning/r/Account/001A/view" in shown  # Open in CRM
    assert brief["text"].startswith("Acme Corp is ")  # the fallback: the one sentence


def test_ambiguous_unknown_help_and_the_callers_own_book(slack):
    fake, url = slack
    _, _, rid = command(fake, url, "acme")
    (picker,) = answer(fake, rid)
    buttons = [e for b in picker["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert [b["text"]["text"] for b in buttons] == ["Acme Corp", "Acme Labs"]
    _, _, rid = command(fake, url, "nortwind")
    (missing,) = answer(fake, rid)
    assert "No account matches *nortwind*. Did you mean *Northwind*?" in text_of(missing)
    _, _, rid = command(fake, url, "help")
    assert "*/health ACCOUNT*" in text_of(answer(fake, rid)[0])
    _, _, rid = command(fake, url, "")
    (book,) = answer(fake, rid)
    assert [c["user"] for c in fake.called("users.info")] == ["U1"]
    listed = text_of(book)
    assert "Your book: 2 accounts" in listed and "Acme Corp" in listed
    assert "&lt;!channel&gt; Inc" in listed and "<!channel>" not in listed  # pings no one


def test_a_picked_button_replaces_the_picker_with_the_brief(slack):
    fake, url = slack
    _, _, rid = command(fake, url, "acme")
    (picker,) = answer(fake, rid)
    button = next(e for b in picker["blocks"] if b["type"] == "actions" for e in b["elements"]
                  if e["text"]["text"] == "Acme Labs")  # fmt: skip
    rid2 = fake.response_url()
    assert click(url, button, rid2).status_code == 200
    (brief,) = answer(fake, rid2.rsplit("/", 1)[1])
    assert brief["replace_original"] is True and "Acme Labs" in text_of(brief)


def test_forged_and_stale_requests_get_401_and_do_nothing(slack):
    fake, url = slack
    forged, _, rid = command(fake, url, "acme corp", secret="not-the-secret")
    stale, _, rid2 = command(fake, url, "acme corp", ts=int(time.time()) - 400)
    assert (forged.status_code, stale.status_code) == (401, 401)
    time.sleep(0.5)
    assert fake.responses[rid] == [] and fake.responses[rid2] == []
    assert fake.calls == [c for c in fake.calls if c.method == "auth.test"]


def test_tokens_never_reach_the_logs(slack, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    fake, url = slack
    for text in ("acme corp", "acme", "", "nope"):
        _, _, rid = command(fake, url, text)
        answer(fake, rid)
    command(fake, url, "acme corp", secret="forged")
    logged = caplog.text
    assert logged  # slack_sdk and Bolt did log at DEBUG
    assert TOKEN not in logged and SECRET not in logged


def test_a_digest_lines_brief_button_answers_with_the_brief(slack):
    fake, url = slack
    button = {"action_id": "show_brief:1", "value": '{"account_id": 1}',
              "text": {"type": "plain_text", "text": "Brief"}}  # fmt: skip
    rid = fake.response_url()
    assert click(url, button, rid).status_code == 200
    (brief,) = answer(fake, rid.rsplit("/", 1)[1])
    assert brief["replace_original"] is False and brief["blocks"][0]["type"] == "header"


def test_an_account_without_any_signal_says_so(slack, pg_engine):
    fake, url = slack
    with session_scope(pg_engine) as s:
        batch = Batch(accounts=[AccountRecord("salesforce", "001Z", "Zenith Quiet", "zq.test")])
        store_batch(session=s, source="salesforce", batch=batch, now=datetime.now(UTC))
    _, _, rid = command(fake, url, "zenith quiet")
    (said,) = answer(fake, rid)
    assert said["text"] == "*Zenith Quiet* has no score yet: no signal has come in."
