"""The daily at-risk digest against the fake Slack: 09:00 in each CSM's own time zone, once
a day however often beat fires (also two at once), a failed DM retried, the managers' roll-up
in the digest channel, and never more blocks than Slack takes."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from bot import views
from connectors.sandbox.server import Fault
from connectors.sandbox.slack_api import TOKEN, start_slack_sandbox
from health.briefs import AccountLine
from health.db import session_scope
from health.models import DigestSent
from health.records import AccountRecord, AccountRef, Batch, ObservationRecord
from health.repo import store_batch
from health.rescore import rescore
from health.settings import Settings
from tests.bot.test_health_command import MODEL, TODAY
from workers.digests import send_digests

PEOPLE = {
    "UDANA": {"email": "dana@x.test", "tz": "America/New_York"},
    "ULEE": {"email": "lee@x.test", "tz": "Europe/Berlin"},
}


def seed(engine) -> None:
    """Two accounts for each CSM: one whose usage collapsed and tickets piled up, one fine."""
    at = datetime.combine(TODAY, datetime.min.time(), tzinfo=UTC)
    owners = {"001A": "dana@x.test", "001B": "dana@x.test", "001C": "lee@x.test",
              "001D": "lee@x.test"}  # fmt: skip
    obs = []
    for ext in owners:
        bad = ext in ("001A", "001C")
        for d in range(60):
            when, ref = at - timedelta(days=d), AccountRef(crm_id=ext)
            users = 4 if bad and d < 20 else 70
            obs += [ObservationRecord(ref, "active_users", when, users, "product"),
                    ObservationRecord(ref, "seats", when, 80, "salesforce"),
                    # adoption too: with usage, half the model, enough for a tier
                    ObservationRecord(ref, "core_features_used", when, 1 if users < 10 else 4,
                                      "product"),
                    ObservationRecord(ref, "key_events", when, 5 * users, "product")]  # fmt: skip
        if bad:
            obs += [ObservationRecord(ref, "open_tickets", at, 9, "zendesk"),
                    ObservationRecord(ref, "csat", at, 10, "zendesk")]  # fmt: skip
    records = [AccountRecord("salesforce", ext, f"Account {ext}", f"{ext}.test", owner=o,
                             arr=100_000.0) for ext, o in owners.items()]  # fmt: skip
    with session_scope(engine) as s:
        batch = Batch(accounts=records, observations=obs)
        store_batch(session=s, source="salesforce", batch=batch, now=at)
    rescore(engine, MODEL, day=TODAY)


def settings_for(fake, **more) -> Settings:
    return Settings(_env_file=None, slack_bot_token=TOKEN, slack_api_url=fake.url, **more)


def at_utc(hour: int) -> datetime:
    return datetime.combine(TODAY, datetime.min.time(), tzinfo=UTC) + timedelta(hours=hour)


def dms(fake) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for m in fake.called("chat.postMessage"):
        out.setdefault(m["channel"], []).append(m)
    return out


def test_each_csm_at_nine_local_once_a_day_and_the_managers_rollup(pg_engine):
    seed(pg_engine)  # dana and lee own accounts; some are at risk or falling
    with start_slack_sandbox(PEOPLE) as fake:
        settings = settings_for(fake, slack_digest_channel="CMGR")
        early = send_digests(pg_engine, settings, now=at_utc(8))  # 03:00 NY, 09:00 Berlin
        assert dms(fake).keys() == {"ULEE"} and early.waiting == 1
        assert "CMGR" not in dms(fake)  # the roll-up waits for 09:00 UTC
        threads = [threading.Thread(target=send_digests, args=(pg_engine, settings),
                                    kwargs={"now": at_utc(14)}) for _ in range(2)]  # fmt: skip
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        send_digests(pg_engine, settings, now=at_utc(15))  # beat fires again
        sent = dms(fake)
        assert {k: len(v) for k, v in sent.items()} == {"ULEE": 1, "UDANA": 1, "CMGR": 1}
        assert len(fake.called("users.lookupByEmail")) == 2  # cached after the first lookup
        lee = str(sent["ULEE"][0]["blocks"])
        assert "Log sentiment" in lee and "Brief" in lee and "need you today" in lee
        assert "Sentiment to refresh" in lee and "none logged in 30 days" in lee  # the reminder
        assert "lee@x.test" in str(sent["CMGR"][0]["blocks"])
        send_digests(pg_engine, settings, now=at_utc(24 + 14))  # the next day: once more each
        assert {k: len(v) for k, v in dms(fake).items()} == {"ULEE": 2, "UDANA": 2, "CMGR": 2}


def test_a_failed_dm_is_retried_on_the_next_tick_and_never_lost(pg_engine):
    seed(pg_engine)
    with start_slack_sandbox(PEOPLE) as fake:
        settings = settings_for(fake)
        first = send_digests(pg_engine, settings, now=at_utc(6))  # 07:00 Berlin, 01:00 NY
        assert first.sent == [] and first.waiting == 2
        fake.server.inject(Fault("server_error", path_contains="chat.postMessage", times=10))
        failed = send_digests(pg_engine, settings, now=at_utc(8))
        assert set(failed.failed) == {"ULEE"} and not failed.sent
        with session_scope(pg_engine) as s:
            assert s.execute(select(DigestSent)).scalars().all() == []  # the day given back
        fake.server.faults.clear()
        retried = send_digests(pg_engine, settings, now=at_utc(8) + timedelta(minutes=15))
        assert retried.sent == ["ULEE"]


def test_a_long_digest_stays_within_slacks_block_limit():
    lines = [
        AccountLine(i, f"Account {i}", None, "a@x.test", None, 1000.0 * i, 30, "critical", -12,
                    0.9, f"Account {i} is Critical at 30 (down 12 points in 30 days): usage fell.")
        for i in range(1, 31)
    ]  # fmt: skip
    blocks = views.as_dicts(views.digest_blocks(lines, day=TODAY, renewals={}))
    assert len(blocks) <= 50
    assert "and 10 more" in str(blocks[-1])
    action_ids = [e["action_id"] for b in blocks if b["type"] == "actions" for e in b["elements"]]
    assert len(action_ids) == len(set(action_ids)) == 40  # unique in the message, as Slack asks


def test_slack_rate_limits_are_waited_out_not_lost(pg_engine):
    seed(pg_engine)
    with start_slack_sandbox(PEOPLE) as fake:
        fake.server.inject(
            Fault("rate_limit", path_contains="chat.postMessage", times=1, retry_after=1)
        )
        started = datetime.now(UTC)
        report = send_digests(pg_engine, settings_for(fake), now=at_utc(8))
        assert report.sent == ["ULEE"] and not report.failed
        assert (datetime.now(UTC) - started).total_seconds() >= 1  # Retry-After honoured
        assert fake.server.count("POST", "chat.postMessage") == 2  # the 429, then the post


def test_the_digest_reminds_of_stale_sentiment_only_where_it_is_stale(pg_engine):
    from health.models import Account, SentimentEntry

    seed(pg_engine)
    with session_scope(pg_engine) as s:  # lee logged sentiment for both accounts last week
        for acc in s.execute(select(Account.id).where(Account.owner == "lee@x.test")).scalars():
            s.add(SentimentEntry(account_id=acc, rating=3, author="ULEE",
                                 created_at=at_utc(0) - timedelta(days=7)))  # fmt: skip
    with start_slack_sandbox(PEOPLE) as fake:
        send_digests(pg_engine, settings_for(fake, sentiment_stale_days=5), now=at_utc(15))
        sent = dms(fake)
        assert "Sentiment to refresh" in str(sent["UDANA"][0]["blocks"])
        assert "none logged in 5 days" in str(sent["ULEE"][0]["blocks"])  # 7 days > 5
        fake.calls.clear()
    with start_slack_sandbox(PEOPLE) as fake:
        with session_scope(pg_engine) as s:
            s.execute(DigestSent.__table__.delete())
        send_digests(pg_engine, settings_for(fake, sentiment_stale_days=10), now=at_utc(15))
        sent = dms(fake)
        assert "Sentiment to refresh" in str(sent["UDANA"][0]["blocks"])
        assert "Sentiment to refresh" not in str(sent["ULEE"][0]["blocks"])  # 7 days < 10
