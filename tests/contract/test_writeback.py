"""Writeback end to end in one process: the pipeline syncs the sandbox CRMs with the real
clients, scores what changed and writes the scores back through the outbox — once per change,
never again when nothing changed, refused records kept with the CRM's own error."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from connectors.base import TransientConnectorError
from connectors.registry import build_sink
from connectors.sandbox.portfolio import generate_portfolio
from connectors.sandbox.server import Fault
from health.db import session_scope
from health.models import Account, CrmWrite, OutboxItem, Score
from health.outbox import RetryPolicy
from health.repo import utcnow
from health.scoring.model import load_model
from health.settings import DEFAULT_MODEL_PATH
from tests.contract.helpers import crm_sandboxes, written_ids
from workers.pipeline import flush_all, run_once
from workers.writeback import flush_outbox

PORTFOLIO = generate_portfolio(40, 120, seed=5)
MODEL = load_model(DEFAULT_MODEL_PATH)


def former() -> set[str]:
    """The sandbox ids of the accounts that churned: former customers when the pipeline scores
    (every churn in the window is in the past by then)."""
    return {a.external_id for a in PORTFOLIO.accounts if a.churned_on is not None}


def newest_scores(engine) -> dict[str, tuple[str, int, str]]:
    """external id -> (source, rounded score, announced tier) of each account's newest score."""
    with session_scope(engine) as s:
        newest = (
            select(Score.account_id, func.max(Score.score_date).label("d"))
            .group_by(Score.account_id)
            .subquery()
        )
        rows = s.execute(
            select(Account.external_id, Account.source, Score.total, Score.announced_tier)
            .join(Score, Score.account_id == Account.id)
            .join(
                newest, (newest.c.account_id == Score.account_id) & (newest.c.d == Score.score_date)
            )
        ).all()
    return {ext: (src, round(total), tier) for ext, src, total, tier in rows}


def crm_values(sf, hs, ext: str, source: str) -> tuple[int, str]:
    if source == "salesforce":
        rec = sf.record("Account", ext)
        return round(rec["Health_Score__c"]), rec["Health_Tier__c"]
    props = hs.store.objects["companies"][ext]["properties"]
    return int(props["health_score"]), props["health_tier"]


def outbox_count(engine, target: str | None = None) -> int:
    q = select(func.count()).select_from(OutboxItem)
    if target is not None:
        q = q.where(OutboxItem.target == target)
    with session_scope(engine) as s:
        return s.execute(q).scalar_one()


def test_run_writes_every_score_once_and_a_second_run_writes_nothing(engine):
    with crm_sandboxes(PORTFOLIO) as (sf, hs, settings):
        first = run_once(engine, settings, MODEL)
        scores = newest_scores(engine)
        assert not first.failed and first.scoring.scored == len(scores) >= 30
        gone = former() | {hs.company_ids[e] for e in former() if e in hs.company_ids}
        assert gone and gone.isdisjoint(scores)  # a former customer is not scored
        assert {src for src, _, _ in scores.values()} == {"salesforce", "hubspot"}
        for ext, (src, total, tier) in scores.items():  # the CRM shows the newest score
            assert crm_values(sf, hs, ext, src) == (total, tier), ext
        assert written_ids(sf, hs) == {ext: 1 for ext in scores}
        assert sf.server.count("PATCH", "/composite/sobjects") == 1  # 30 accounts: 1 request
        assert hs.server.count("POST", "/companies/batch/update") == 1  # 10: 1 request
        assert outbox_count(engine) == 0
        sf.server.reset_counts()
        hs.server.reset_counts()
        second = run_once(engine, settings, MODEL)  # our own writes bumped SystemModstamp ...
        assert second.syncs[0].fetched > 0  # ... so the accounts are read again ...
        assert second.scoring is None  # ... change nothing ...
        assert written_ids(sf, hs) == {}  # ... and write nothing
        assert sum(f.acknowledged for f in second.flushes) == 0


def test_a_rescore_with_the_same_numbers_sends_nothing(pg_engine):
    with crm_sandboxes(PORTFOLIO) as (sf, hs, settings):
        run_once(pg_engine, settings, MODEL)
        from workers.pipeline import score_accounts

        report = score_accounts(pg_engine, settings, MODEL, None)  # same day, same data
        queued = outbox_count(pg_engine)
        assert queued == report.scored >= 30  # compared with no earlier day: queued again
        sf.server.reset_counts()
        hs.server.reset_counts()
        run = flush_all(pg_engine, settings)
        assert written_ids(sf, hs) == {}  # the CRMs already show these values: none sent
        assert sum(f.unchanged for f in run.flushes) == queued
        assert outbox_count(pg_engine) == 0


def test_row_locks_are_retried_and_deleted_records_parked_with_the_crm_error(pg_engine):
    with crm_sandboxes(PORTFOLIO, writeback_retry_seconds=0) as (sf, hs, settings):
        sf_ids = [a for a, (src, *_) in _sync_and_score(pg_engine, settings).items()
                  if src == "salesforce"]  # fmt: skip
        locked, gone = sf_ids[:3], sf_ids[3]
        sf.row_locks = dict.fromkeys(locked, 1)
        sf.delete("Account", gone)
        policy = RetryPolicy(base_seconds=0, max_permanent=3)
        sink = build_sink(settings, "salesforce")
        first = flush_outbox(pg_engine, sink, policy=policy)
        assert (first.acknowledged, first.retrying, first.parked) == (len(sf_ids) - 4, 4, 0)
        assert len(sf_ids) >= 25
        per_code = (
            select(OutboxItem.error_code, func.count())
            .where(OutboxItem.target == "salesforce")
            .group_by(OutboxItem.error_code)
        )
        with session_scope(pg_engine) as s:
            codes = dict(s.execute(per_code).all())
        assert codes == {"UNABLE_TO_LOCK_ROW": 3, "ENTITY_IS_DELETED": 1}
        second = flush_outbox(pg_engine, sink, policy=policy)  # the locks are gone now
        assert (second.acknowledged, second.retrying) == (3, 1)
        flush_outbox(pg_engine, sink, policy=policy)
        with session_scope(pg_engine) as s:
            left = (
                s.execute(select(OutboxItem).where(OutboxItem.target == "salesforce"))
                .scalars()
                .all()
            )
        assert [(o.error_code, o.attempts, o.parked_at is not None) for o in left] == [
            ("ENTITY_IS_DELETED", 3, True)
        ]
        sf.server.reset_counts()
        assert flush_outbox(pg_engine, sink, policy=policy).sent == 0  # parked: not sent again
        sent = written_ids(sf, hs)
        assert sent == {}
        for ext in locked:
            assert sf.record("Account", ext)["Health_Score__c"] is not None


def _sync_and_score(engine, settings) -> dict:
    from workers.pipeline import score_accounts, sync_all

    run = sync_all(engine, settings)
    score_accounts(engine, settings, MODEL, run.touched)
    return newest_scores(engine)


def test_rate_limits_keep_rows_queued_and_the_retry_sends_each_once(pg_engine):
    with crm_sandboxes(PORTFOLIO) as (sf, hs, settings):
        scores = _sync_and_score(pg_engine, settings)
        on_hubspot = sum(src == "hubspot" for src, _, _ in scores.values())
        sink = build_sink(settings, "hubspot")
        sink.client.sleep = lambda s: None  # the client's short in-call retry, without waiting
        attempts = sink.client.max_retries + 1  # a whole call's worth of 429s
        hs.server.inject(Fault("rate_limit", path_contains="/batch/update", times=attempts))
        with pytest.raises(TransientConnectorError):
            flush_outbox(pg_engine, sink)
        assert outbox_count(pg_engine, "hubspot") == on_hubspot >= 5  # nothing lost
        hs.server.reset_counts()
        report = flush_outbox(pg_engine, sink)  # asks first (the write may have landed) ...
        assert hs.server.count("POST", "/companies/batch/read") == 1
        assert report.acknowledged == on_hubspot and report.verified == 0  # ... it had not: sent
        assert outbox_count(pg_engine, "hubspot") == 0
        accepted = [r for r in hs.server.requests if r.path.endswith("/batch/update")][-1]
        assert len(accepted.json()["inputs"]) == on_hubspot


def _flush_in_child(settings_dict: dict, url: str) -> None:
    from health.db import make_engine
    from health.settings import Settings

    flush_outbox(make_engine(url), build_sink(Settings(**settings_dict), "salesforce"))


def test_a_flush_killed_after_the_crm_applied_it_is_not_sent_twice(pg_engine, postgres_url):
    many = generate_portfolio(320, 60, seed=8)  # ~240 in Salesforce: two collection requests
    with crm_sandboxes(many) as (sf, hs, settings):
        _sync_and_score(pg_engine, settings)
        queued = outbox_count(pg_engine, "salesforce")
        assert queued > 200
        sf.server.reset_counts()
        # the second request is applied, and its answer never comes back: killed waiting
        sf.server.inject(Fault("slow", path_contains="/composite/sobjects", times=1, delay=0))
        sf.server.inject(
            Fault("slow_answer", path_contains="/composite/sobjects", times=1, delay=30)
        )
        ctx = multiprocessing.get_context("fork")
        child = ctx.Process(target=_flush_in_child, args=(settings.model_dump(), postgres_url))
        child.start()
        deadline = time.monotonic() + 30
        while sf.server.count("PATCH", "/composite/sobjects") < 2:
            assert time.monotonic() < deadline and child.is_alive()
            time.sleep(0.05)
        time.sleep(0.3)  # the second request has been applied by now
        os.kill(child.pid, signal.SIGKILL)
        child.join()
        with session_scope(pg_engine) as s:
            in_flight = s.execute(
                select(func.count()).where(OutboxItem.sent_at.is_not(None))
            ).scalar_one()
        assert in_flight == queued - 200  # the second chunk: applied by the CRM, unknown to us
        report = flush_outbox(pg_engine, build_sink(settings, "salesforce"))
        for _ in range(50):  # PostgreSQL frees the dead flush's lock as it notices the hang-up
            if report.skipped is None:
                break
            time.sleep(0.1)
            report = flush_outbox(pg_engine, build_sink(settings, "salesforce"))
        assert report.verified == queued - 200 and report.sent == 0
        assert outbox_count(pg_engine, "salesforce") == 0
        sf_sent = {k: v for k, v in written_ids(sf, hs).items()}
        assert len(sf_sent) == queued and set(sf_sent.values()) == {1}  # each exactly once


def test_an_older_score_never_replaces_a_newer_one_in_flight(pg_engine):
    with crm_sandboxes(PORTFOLIO) as (sf, hs, settings):
        _sync_and_score(pg_engine, settings)
        from health.outbox import claim, settle
        from workers.pipeline import score_accounts

        now = utcnow()
        with session_scope(pg_engine) as s:
            claimed, _ = claim(session=s, target="salesforce", limit=5, now=now)
        yesterday = now.date() - timedelta(days=1)
        report = score_accounts(pg_engine, settings, MODEL, None, day=yesterday)  # a late day
        assert report.scored >= 30
        queued_day = (
            select(Score.score_date)
            .select_from(OutboxItem)
            .join(Score, Score.id == OutboxItem.score_id)
            .distinct()
        )
        with session_scope(pg_engine) as s:
            assert list(s.execute(queued_day).scalars()) == [now.date()]  # still today's
            ok = {c.write.account_external_id for c in claimed}
            settle(session=s, target="salesforce", claimed=claimed, ok=ok, errors={}, now=now)
        with session_scope(pg_engine) as s:
            shown = s.execute(select(CrmWrite.score_id)).scalars().all()
        assert sorted(shown) == sorted(c.score_id for c in claimed)
        assert (
            outbox_count(pg_engine, "salesforce") == 29 - 5
            or outbox_count(pg_engine, "salesforce")
            == len([v for v in newest_scores(pg_engine).values() if v[0] == "salesforce"]) - 5
        )
