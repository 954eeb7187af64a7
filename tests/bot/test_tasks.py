"""Playbook tasks in Slack against the fake Web API: one bundled DM per person with Done /
Snooze / Reassign, updated in place when acted on (signed block_actions into the running
app), quiet hours, the per-account cooldown, escalation to the next person, a failed DM
retried, only the owner or a manager may act, a retried click changes nothing twice."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest
import requests
from sqlalchemy import select, update

from bot.app import build_app
from bot.server import PATH, make_server
from connectors.sandbox.server import Fault
from connectors.sandbox.slack_api import TOKEN, start_slack_sandbox
from health.db import session_scope
from health.models import Account, PlaybookTask, PlaybookTaskEvent, ScoreChange
from health.settings import Settings
from playbooks.runner import run_playbooks, sweep_playbooks
from playbooks.spec import Condition, Playbook, PlaybookSet, TaskTemplate, Team
from tests.bot.test_health_command import MODEL, SECRET, seed, signed
from workers.task_notices import deliver_tasks, is_quiet, quiet_hours

PEOPLE = {
    "U1": {"email": "dana@x.test", "tz": "America/New_York"},
    "U2": {"email": "x@y.test", "tz": "UTC"},
    "U3": {"email": "boss@x.test", "tz": "UTC"},
}
NO_OWNER = "Northwind"  # lee's (not in Slack); one test takes its owner away
NOON_NY = datetime.now(UTC).replace(hour=17, minute=0, second=0, microsecond=0)  # 12:00 / 13:00


def book(severity: str = "medium") -> PlaybookSet:
    every = Playbook(
        key="check_in",
        name="Check in",
        when=Condition("score_below", 101.0),
        task=TaskTemplate(title="Check in with {account.name}", description="Score {score.total}",
                          steps=("Call the champion",), due=timedelta(hours=24),
                          severity=severity),
    )  # fmt: skip
    team = Team(
        roles={"cs_manager": {"default": "x@y.test"}}, escalation={"account_owner": "cs_manager"}
    )
    return PlaybookSet((every,), team=team)


def open_tasks(engine, playbooks: PlaybookSet, now: datetime) -> None:
    with session_scope(engine) as s:
        ids = list(s.execute(select(ScoreChange.id)).scalars())
    run_playbooks(engine, playbooks, change_ids=ids, now=now)


@pytest.fixture
def slack(pg_engine):
    seed(pg_engine)  # dana owns Acme Corp and "<!channel> Inc"; lee (not in Slack) two more
    with start_slack_sandbox(PEOPLE) as fake:
        settings = Settings(_env_file=None, slack_bot_token=TOKEN, slack_signing_secret=SECRET,
                            slack_api_url=fake.url, slack_managers=["boss@x.test"])  # fmt: skip
        app = build_app(settings, engine=pg_engine, model=MODEL)
        server = make_server(app, "127.0.0.1", 0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        yield fake, f"http://127.0.0.1:{server.server_address[1]}{PATH}", settings
        server.shutdown()


def dms(fake, channel: str) -> list[dict]:
    return [m for m in fake.called("chat.postMessage") if m["channel"] == channel]


def tasks(engine) -> dict[str, PlaybookTask]:
    with session_scope(engine) as s:
        rows = s.execute(select(PlaybookTask).order_by(PlaybookTask.id)).scalars().all()
        return {t.title: t for t in rows}


def act(fake, url: str, action: dict, *, channel: str, ts: str, user: str = "U1") -> str:
    """Click `action` of the message (channel, ts) as `user`; returns the response_url id."""
    response_url = fake.response_url()
    payload = {
        "type": "block_actions", "user": {"id": user}, "team": {"id": "T0SANDBOX"},
        "api_app_id": "A1", "trigger_id": "1.2.abc",
        "container": {"type": "message", "channel_id": channel, "message_ts": ts},
        "channel": {"id": channel}, "message": {"ts": ts},
        "response_url": response_url,
        "actions": [{**action, "block_id": "task", "action_ts": "1"}],
    }  # fmt: skip
    body = urlencode({"payload": json.dumps(payload)})
    assert requests.post(url, data=body, headers=signed(body), timeout=5).status_code == 200
    return response_url.rsplit("/", 1)[1]


def wait_for(condition, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the app did not act in time"
        time.sleep(0.05)


def test_one_bundled_dm_then_done_updates_it_in_place(slack, pg_engine):
    fake, url, settings = slack
    open_tasks(pg_engine, book(), NOON_NY)
    report = deliver_tasks(pg_engine, settings, now=NOON_NY)
    (dm,) = dms(fake, "U1")  # dana's two tasks in one message
    assert report.sent == {"U1": 2} and report.not_in_slack == ["lee@x.test"]
    shown = json.dumps(dm["blocks"])
    assert "Check in with Acme Corp" in shown and "&lt;!channel&gt; Inc" in shown
    assert "<!channel>" not in shown  # CRM text never pings anyone
    assert "Done" in shown and "Snooze" in shown and "Reassign" in shown
    assert deliver_tasks(pg_engine, settings, now=NOON_NY).sent == {}  # told once
    acme = tasks(pg_engine)["Check in with Acme Corp"]
    ts = acme.slack_ts
    assert acme.slack_channel_id == "D1" and ts  # the DM (an IM), as Slack answers
    value = json.dumps({"task_id": acme.id})
    done = {"type": "button", "action_id": f"task_done:{acme.id}", "value": value}
    act(fake, url, done, channel="D1", ts=ts)
    wait_for(lambda: fake.called("chat.update"))
    (update,) = fake.called("chat.update")
    assert update["channel"] == "D1" and update["ts"] == ts
    assert "Done by <@U1>" in json.dumps(update["blocks"])
    assert tasks(pg_engine)["Check in with Acme Corp"].status == "done"
    rid = act(fake, url, done, channel="D1", ts=ts)  # Slack retries the click: nothing twice
    wait_for(lambda: fake.responses[rid])
    assert fake.responses[rid][0]["text"] == "this task is already done by U1"
    with session_scope(pg_engine) as s:
        events = s.execute(
            select(PlaybookTaskEvent.action, PlaybookTaskEvent.actor).where(
                PlaybookTaskEvent.task_id == acme.id
            )
        ).all()
    assert sorted(events) == [("done", "U1"), ("opened", "healthbot")]


def test_snooze_and_reassign_and_who_may_act(slack, pg_engine):
    fake, url, settings = slack
    open_tasks(pg_engine, book(), NOON_NY)
    deliver_tasks(pg_engine, settings, now=NOON_NY)
    acme = tasks(pg_engine)["Check in with Acme Corp"]
    ts = acme.slack_ts
    snooze = {"type": "static_select", "action_id": f"task_snooze:{acme.id}",
              "selected_option": {"value": f"{acme.id}:3d"}}  # fmt: skip
    rid = act(fake, url, snooze, channel="D1", ts=ts, user="U2")  # not the owner, no manager
    wait_for(lambda: fake.responses[rid])
    assert "Only dana@x.test or a CS manager" in fake.responses[rid][0]["text"]
    assert tasks(pg_engine)["Check in with Acme Corp"].status == "open"
    act(fake, url, snooze, channel="D1", ts=ts)
    wait_for(lambda: tasks(pg_engine)["Check in with Acme Corp"].status == "snoozed")
    until = tasks(pg_engine)["Check in with Acme Corp"].snoozed_until
    assert timedelta(days=2, hours=23) < until - datetime.now(UTC) <= timedelta(days=3)
    other = tasks(pg_engine)["Check in with <!channel> Inc"]
    reassign = {"type": "users_select", "action_id": f"task_reassign:{other.id}",
                "selected_user": "U2"}  # fmt: skip
    act(fake, url, reassign, channel="D1", ts=ts, user="U3")  # a manager may
    wait_for(lambda: tasks(pg_engine)["Check in with <!channel> Inc"].owner == "x@y.test")
    later = NOON_NY + timedelta(hours=1)
    assert deliver_tasks(pg_engine, settings, now=later).sent == {"U2": 1}  # the new owner


def test_quiet_hours_hold_all_but_high_severity(slack, pg_engine):
    fake, _url, settings = slack
    night = NOON_NY.replace(hour=7)  # 02:00 or 03:00 in New York
    open_tasks(pg_engine, book("medium"), night)
    quiet = deliver_tasks(pg_engine, settings, now=night)
    assert quiet.sent == {} and quiet.quiet == 2 and dms(fake, "U1") == []
    assert deliver_tasks(pg_engine, settings, now=NOON_NY).sent == {"U1": 2}  # the morning
    assert quiet_hours("20-8") == (20, 8) and quiet_hours("off") is None
    assert is_quiet(23, (20, 8)) and is_quiet(3, (20, 8)) and not is_quiet(12, (20, 8))
    assert is_quiet(13, (12, 14)) and not is_quiet(15, (12, 14))


def test_high_severity_breaks_through_quiet_hours(slack, pg_engine):
    fake, _url, settings = slack
    night = NOON_NY.replace(hour=7)
    open_tasks(pg_engine, book("high"), night)
    assert deliver_tasks(pg_engine, settings, now=night).sent == {"U1": 2}


def test_an_account_pings_a_person_once_a_day_and_escalation_reaches_the_next_person(
    slack, pg_engine
):
    fake, _url, settings = slack
    open_tasks(pg_engine, book(), NOON_NY)
    deliver_tasks(pg_engine, settings, now=NOON_NY)
    second = Playbook(key="second", name="Second", when=Condition("score_below", 101.0),
                      task=TaskTemplate(title="Second look at {account.name}"))  # fmt: skip
    open_tasks(pg_engine, PlaybookSet((second,)), NOON_NY + timedelta(hours=1))
    cooling = deliver_tasks(pg_engine, settings, now=NOON_NY + timedelta(hours=1))
    assert cooling.sent == {} and cooling.cooling == 2
    next_day = NOON_NY + timedelta(hours=21)
    assert deliver_tasks(pg_engine, settings, now=next_day).sent == {"U1": 2}
    overdue = NOON_NY + timedelta(hours=25)  # the check-in tasks were due in 24 h
    assert sweep_playbooks(pg_engine, book(), now=overdue).escalated == 4
    escalated = deliver_tasks(pg_engine, settings, now=overdue)
    assert escalated.sent == {"U2": 4}  # the CS manager, with lee's two as well
    assert "escalated to you" in dms(fake, "U2")[0]["text"]


def test_a_failed_dm_stays_queued_and_goes_out_next_time(slack, pg_engine):
    fake, _url, settings = slack
    open_tasks(pg_engine, book(), NOON_NY)
    fake.server.inject(Fault("server_error", path_contains="chat.postMessage", times=10))
    failed = deliver_tasks(pg_engine, settings, now=NOON_NY)
    assert set(failed.failed) == {"U1"} and failed.sent == {}
    assert all(t.notify for t in tasks(pg_engine).values())
    fake.server.faults.clear()
    assert deliver_tasks(pg_engine, settings, now=NOON_NY).sent == {"U1": 2}


def test_app_home_and_the_brief_list_the_open_tasks(slack, pg_engine):
    from tests.bot.test_app_home import event, published
    from tests.bot.test_health_command import answer, command

    fake, url, _settings = slack
    open_tasks(pg_engine, book("high"), NOON_NY)
    assert event(url, "EvTasks").status_code == 200
    (home,) = published(fake, 1)
    text = json.dumps(home["view"]["blocks"], ensure_ascii=False)
    assert "Your open tasks" in text and "Check in with Acme Corp" in text
    assert "Check in with &lt;!channel&gt; Inc" in text
    _resp, _seconds, rid = command(fake, url, "acme corp")
    (brief,) = answer(fake, rid)
    shown = json.dumps(brief["blocks"], ensure_ascii=False)
    assert "*Open tasks*" in shown and "Check in with Acme Corp" in shown


def test_a_playbooks_alert_channel_hears_once_about_each_task_it_opens(slack, pg_engine):
    fake, _url, settings = slack
    alerting = book("high")
    alerting = PlaybookSet(
        (replace(alerting.playbooks[0], alert_channel="CALERTS"),), team=alerting.team
    )
    open_tasks(pg_engine, alerting, NOON_NY)
    first = deliver_tasks(pg_engine, settings, now=NOON_NY)
    (alert,) = dms(fake, "CALERTS")
    assert first.alerts == 1 and "Check in with Acme Corp" in json.dumps(alert["blocks"])
    assert "dana@x.test" in json.dumps(alert["blocks"])  # who has it
    deliver_tasks(pg_engine, settings, now=NOON_NY + timedelta(minutes=1))
    assert len(dms(fake, "CALERTS")) == 1


def test_the_managers_rollup_says_what_the_playbooks_achieved(slack, pg_engine):
    from workers.digests import send_digests

    fake, _url, settings = slack
    open_tasks(pg_engine, book(), NOON_NY)  # due in 24 h: overdue by the next day's digest
    settings = settings.model_copy(update={"slack_digest_channel": "CMGR"})
    send_digests(pg_engine, settings, now=NOON_NY + timedelta(hours=25))
    (rollup,) = dms(fake, "CMGR")
    line = json.dumps(rollup["blocks"])
    assert "Playbooks, last 180 days: 4 tasks, 4 open" in line and "overdue 100%" in line


def test_tasks_nobody_in_slack_holds_go_to_the_managers_channel_to_be_taken(slack, pg_engine):
    fake, url, settings = slack
    with session_scope(pg_engine) as s:  # one of lee's accounts loses its owner in the CRM
        s.execute(update(Account).where(Account.name == NO_OWNER).values(owner=None))
    open_tasks(pg_engine, book(), NOON_NY)
    quiet = deliver_tasks(pg_engine, settings, now=NOON_NY)  # no managers' channel set
    assert quiet.sent == {"U1": 2} and quiet.not_in_slack == ["lee@x.test"]
    settings = settings.model_copy(update={"slack_digest_channel": "CMGR"})
    report = deliver_tasks(pg_engine, settings, now=NOON_NY + timedelta(minutes=1))
    assert report.sent == {"CMGR": 2} and report.not_in_slack == ["lee@x.test"]
    (post,) = dms(fake, "CMGR")
    shown = json.dumps(post["blocks"])
    assert "2 playbook tasks with no one in Slack to tell" in shown
    assert "lee@x.test is not in Slack" in shown and "no owner" in shown
    assert f"Check in with {NO_OWNER}" in shown and "Reassign" in shown
    assert deliver_tasks(pg_engine, settings, now=NOON_NY + timedelta(minutes=2)).sent == {}
    orphan = tasks(pg_engine)[f"Check in with {NO_OWNER}"]
    assert orphan.owner is None and orphan.slack_channel_id == "CMGR"
    reassign = {"type": "users_select", "action_id": f"task_reassign:{orphan.id}",
                "selected_user": "U1"}  # fmt: skip
    rid = act(fake, url, reassign, channel="CMGR", ts=orphan.slack_ts)  # dana is no manager
    wait_for(lambda: fake.responses[rid])
    assert "or a CS manager can change this task" in fake.responses[rid][0]["text"]
    act(fake, url, reassign, channel="CMGR", ts=orphan.slack_ts, user="U3")  # the manager
    wait_for(lambda: tasks(pg_engine)[f"Check in with {NO_OWNER}"].owner == "dana@x.test")
    wait_for(lambda: fake.called("chat.update"))
    assert fake.called("chat.update")[0]["channel"] == "CMGR"  # the channel's post, in place
    later = deliver_tasks(pg_engine, settings, now=NOON_NY + timedelta(hours=1))
    assert later.sent == {"U1": 1}  # now dana's, told in her DM


def test_an_alert_reaches_its_channel_even_when_the_owner_waits_and_a_failed_one_is_retried(
    slack, pg_engine
):
    fake, _url, settings = slack
    plain = book()  # medium severity: held in the owners' quiet hours
    alerting = PlaybookSet((replace(plain.playbooks[0], alert_channel="CALERTS"),), team=plain.team)
    night = NOON_NY + timedelta(hours=12)  # 00:00 in New York
    open_tasks(pg_engine, alerting, night)
    fake.server.inject(Fault("server_error", path_contains="chat.postMessage", times=10))
    failed = deliver_tasks(pg_engine, settings, now=night)
    assert failed.quiet == 2 and failed.alerts == 0 and set(failed.failed) == {"CALERTS"}
    fake.server.faults.clear()
    retried = deliver_tasks(pg_engine, settings, now=night + timedelta(minutes=1))
    assert retried.alerts == 1 and retried.sent == {} and retried.quiet == 2
    shown = json.dumps(dms(fake, "CALERTS")[-1]["blocks"])
    assert "dana@x.test" in shown and "lee@x.test" in shown  # every task it opened
    posts = len(dms(fake, "CALERTS"))
    assert deliver_tasks(pg_engine, settings, now=night + timedelta(minutes=2)).alerts == 0
    assert len(dms(fake, "CALERTS")) == posts  # once
    with session_scope(pg_engine) as s:
        alerted = s.execute(
            select(PlaybookTaskEvent.task_id).where(PlaybookTaskEvent.action == "alerted")
        ).all()
    assert len(alerted) == 4
