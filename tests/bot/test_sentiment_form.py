"""The sentiment form as a CSM uses it: the brief's button opens the modal (views.open), a
submission without a rating shows the error in the form and stores nothing, a valid one is
stored with who and when, rescores the account at once and queues its CRM writeback."""

from __future__ import annotations

import json
import time
from urllib.parse import urlencode

import requests
from sqlalchemy import func, select

from bot.ids import Field
from health.db import session_scope
from health.models import Observation, OutboxItem, Score, SentimentEntry
from tests.bot.test_health_command import (  # noqa: F401
    TODAY,
    answer,
    click,
    command,
    signed,
    slack,
)


def post(url: str, payload: dict) -> requests.Response:
    body = urlencode({"payload": json.dumps(payload)})
    return requests.post(url, data=body, headers=signed(body), timeout=5)


def submission(metadata: str, rating: str | None, flags=()) -> dict:
    values = {
        Field.RATING: {Field.RATING: {"type": "static_select", "selected_option":
                                      {"value": rating} if rating else None}},
        Field.FLAGS: {Field.FLAGS: {"type": "checkboxes",
                                    "selected_options": [{"value": f} for f in flags]}},
        Field.NOTE: {Field.NOTE: {"type": "plain_text_input", "value": "renewal call went badly"}},
    }  # fmt: skip
    return {
        "type": "view_submission", "user": {"id": "U1"}, "team": {"id": "T0SANDBOX"},
        "api_app_id": "A1", "trigger_id": "1.2.abc",
        "view": {"id": "V1", "type": "modal", "callback_id": "sentiment_form",
                 "private_metadata": metadata, "state": {"values": values}},
    }  # fmt: skip


def test_log_sentiment_from_the_brief(slack, pg_engine):  # noqa: F811
    fake, url = slack
    _, _, rid = command(fake, url, "acme corp")
    (brief,) = answer(fake, rid)
    button = next(e for b in brief["blocks"] if b["type"] == "actions" for e in b["elements"]
                  if e["text"]["text"] == "Log sentiment")  # fmt: skip
    assert click(url, button, fake.response_url()).status_code == 200
    deadline = time.monotonic() + 10
    while not fake.called("views.open"):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    (opened,) = fake.called("views.open")
    modal = opened["view"]
    assert opened["trigger_id"] == "1.2.abc" and modal["callback_id"] == "sentiment_form"
    assert "Acme Corp" in json.dumps(modal["blocks"])

    missing = post(url, submission(modal["private_metadata"], None))
    assert missing.status_code == 200
    assert missing.json() == {"response_action": "errors", "errors": {
        "rating": "Pick a rating from 1 (very worried) to 5 (very confident)."}}  # fmt: skip
    with session_scope(pg_engine) as s:
        assert s.execute(select(func.count()).select_from(SentimentEntry)).scalar_one() == 0

    with session_scope(pg_engine) as s:
        before = s.execute(select(Score).where(Score.score_date == TODAY)).scalars().all()
        before = {x.account_id: x.total for x in before}
    saved = post(url, submission(modal["private_metadata"], "1", flags=["champion_left"]))
    assert saved.status_code == 200 and not saved.content
    deadline = time.monotonic() + 10
    while not fake.called("chat.postMessage"):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    (dm,) = fake.called("chat.postMessage")
    assert dm["channel"] == "U1" and dm["text"].startswith("Logged 1/5 for Acme Corp.")
    with session_scope(pg_engine) as s:
        (entry,) = s.execute(select(SentimentEntry)).scalars().all()
        signals = dict(
            s.execute(select(Observation.signal, Observation.value).where(
                Observation.source == "slack")).all()
        )  # fmt: skip
        now = s.execute(
            select(Score).where(Score.account_id == entry.account_id, Score.score_date == TODAY)
        ).scalar_one()
        queued = s.execute(select(OutboxItem.account_id)).scalars().all()
    assert (entry.rating, entry.flags, entry.author) == (1, ["champion_left"], "U1")
    assert entry.note == "renewal call went badly"
    assert signals == {"csm_sentiment": 1.0, "champion_left": 1.0}
    assert "champion_left" in now.hard_events and now.total < before[entry.account_id]
    assert entry.account_id in queued  # the new score goes to the CRM


def test_only_the_owner_or_a_manager_may_log_sentiment(slack):  # noqa: F811
    fake, url = slack
    _, _, rid = command(fake, url, "acme corp", user="U2")  # anyone may read the brief ...
    (brief,) = answer(fake, rid)
    button = next(e for b in brief["blocks"] if b["type"] == "actions" for e in b["elements"]
                  if e["text"]["text"] == "Log sentiment")  # fmt: skip
    rid2 = fake.response_url()
    assert click(url, button, rid2, user="U2").status_code == 200
    (refused,) = answer(fake, rid2.rsplit("/", 1)[1])
    assert refused["text"] == (
        "Only dana@x.test or a CS manager can log sentiment for Acme Corp."
    )  # ... but only the owner (or a manager) may log sentiment
    assert fake.called("views.open") == []
    forged = post(url, submission(button["value"], "5") | {"user": {"id": "U2"}})
    assert forged.json()["response_action"] == "errors"
