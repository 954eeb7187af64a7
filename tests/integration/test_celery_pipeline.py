"""The pipeline on real parts: Celery worker and beat processes (`celery -A workers.app`),
real Redis, real PostgreSQL, the sandbox CRMs over HTTP(S) with the real vendor clients.

Beat syncs every source, the changed accounts are scored and their scores reach the CRMs;
a worker killed with SIGKILL in the middle of a writeback, CRMs answering 429/5xx for a
while, row locks and schedules that fire twice still leave every changed score applied
exactly once in the CRM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from sqlalchemy import func, select

from connectors.sandbox.portfolio import generate_portfolio
from connectors.sandbox.server import Fault
from health.db import session_scope
from health.models import Account, CrmRecord, CrmWrite, OutboxItem, PlaybookTask, Score, TaskFailure
from health.scoring.model import load_model
from health.settings import DEFAULT_MODEL_PATH, Settings
from tests.contract.helpers import crm_sandboxes
from workers.app import make_celery
from workers.pipeline import score_accounts, sync_all

ROOT = Path(__file__).resolve().parents[2]
CELERY = str(Path(sys.executable).with_name("celery"))
REDIS_BASE = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0").rsplit("/", 1)[0]
MODEL = load_model(DEFAULT_MODEL_PATH)
YESTERDAY = datetime.now(UTC).date() - timedelta(days=1)  # the sandboxes' data is current


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A Redis database of this test worker's own, empty."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    url = f"{REDIS_BASE}/{1 + zlib.crc32(worker.encode()) % 15}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()


class Processes:
    """Worker and beat processes for one test, each in its own process group."""

    def __init__(self, env: dict, tmp: Path):
        self.env, self.tmp, self.procs = env, tmp, {}

    def start(self, name: str, *args: str) -> subprocess.Popen:
        log = (self.tmp / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            [CELERY, "-A", "workers.app", *args, "--loglevel", "INFO"],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs[name] = proc
        return proc

    def worker(self, name: str = "worker", concurrency: int = 2) -> subprocess.Popen:
        return self.start(
            name,
            "worker",
            "-Q",
            "sync,score,writeback,notify",
            "-c",
            str(concurrency),
            "-n",
            f"{name}-{os.getpid()}@%h",
            "--without-mingle",
            "--without-gossip",
        )

    def beat(self) -> subprocess.Popen:
        return self.start("beat", "beat", "-s", str(self.tmp / "beat-schedule"))

    def kill(self, name: str) -> None:
        """SIGKILL the whole group: the worker and its pool processes die mid-task."""
        proc = self.procs.pop(name)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.kill(name)

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(self.tmp.glob("*.log"))
        )


def pipeline_env(settings: Settings, database_url: str, redis_url: str, **more) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SALESFORCE_", "HUBSPOT_"))}
    env.update(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        SALESFORCE_INSTANCE_URL=settings.salesforce_instance_url,
        SALESFORCE_ACCESS_TOKEN=settings.salesforce_access_token.get_secret_value(),
        REQUESTS_CA_BUNDLE=settings.requests_ca_bundle,
        HUBSPOT_BASE_URL=settings.hubspot_base_url,
        HUBSPOT_ACCESS_TOKEN=settings.hubspot_access_token.get_secret_value(),
        SYNC_EVERY_MINUTES="0.05",  # beat: every 3 s
        WRITEBACK_EVERY_SECONDS="1",
        WRITEBACK_RETRY_SECONDS="1",
        PYTHONUNBUFFERED="1",
    )
    env.update({k.upper(): str(v) for k, v in more.items()})
    return env


@pytest.fixture
def procs(tmp_path) -> Iterator[Callable[[dict], Processes]]:
    made: list[Processes] = []

    def make(env: dict) -> Processes:
        made.append(Processes(env, tmp_path))
        return made[-1]

    yield make
    for p in made:
        p.stop_all()


def wait_for(what: str, check: Callable[[], bool], procs: Processes, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}\n{procs.logs()}")
        time.sleep(0.25)


def count(engine, table, *where) -> int:
    with session_scope(engine) as s:
        return s.execute(select(func.count()).select_from(table).where(*where)).scalar_one()


def newest_scores(engine) -> dict[str, tuple[str, int, str]]:
    newest = (
        select(Score.account_id, func.max(Score.score_date).label("d"))
        .group_by(Score.account_id)
        .subquery()
    )
    q = (
        select(Account.external_id, Account.source, Score.total, Score.announced_tier)
        .join(Score, Score.account_id == Account.id)
        .join(newest, (newest.c.account_id == Score.account_id) & (newest.c.d == Score.score_date))
    )
    with session_scope(engine) as s:
        return {ext: (src, round(t), tier) for ext, src, t, tier in s.execute(q).all()}


def crm_shows(sf, hs, ext: str, source: str) -> tuple[int, str] | None:
    if source == "salesforce":
        rec = sf.record("Account", ext)
        score = rec.get("Health_Score__c")
        return None if score is None else (round(score), rec["Health_Tier__c"])
    props = hs.store.objects["companies"][ext]["properties"]
    score = props.get("health_score")
    return None if score is None else (int(score), props["health_tier"])


def every_score_shown(engine, sf, hs) -> bool:
    scores = newest_scores(engine)
    return bool(scores) and all(
        crm_shows(sf, hs, ext, src) == (total, tier) for ext, (src, total, tier) in scores.items()
    )


def test_beat_syncs_scores_and_writes_back_and_a_change_reaches_the_crm(
    pg_engine, postgres_url, redis_url, procs
):
    portfolio = generate_portfolio(40, 120, seed=21, end=YESTERDAY)
    with crm_sandboxes(portfolio) as (sf, hs, settings):
        p = procs(pipeline_env(settings, postgres_url, redis_url))
        p.worker()
        p.beat()
        wait_for(
            "every account scored, every score on its CRM and settled in the outbox",
            lambda: (
                count(pg_engine, Score) >= 35
                and every_score_shown(pg_engine, sf, hs)
                and count(pg_engine, OutboxItem) == 0
            ),
            p,
        )
        assert count(pg_engine, TaskFailure) == 0
        assert count(pg_engine, CrmWrite) == len(newest_scores(pg_engine))
        # a champion leaves in HubSpot: the next beat-driven pass shows it on the company
        company, contact = _champion_of_a_hubspot_company(hs, portfolio)
        hs.contact_leaves(contact)
        wait_for(
            "the departure on the company page",
            lambda: (
                "champion left"
                in (
                    hs.store.objects["companies"][company]["properties"].get("health_drivers") or ""
                )
            ),
            p,
        )
        assert hs.applied[company] == 2  # the first score, then the change: once each
        # the worker runs the playbooks on that change (after its commit, while the outbox
        # sweep may already be writing it back): the champion-departure task opens
        with session_scope(pg_engine) as s:
            account = s.execute(
                select(CrmRecord.account_id).where(CrmRecord.external_id == company)
            ).scalar_one()

        def opened() -> list:
            with session_scope(pg_engine) as s:
                q = select(PlaybookTask.playbook, PlaybookTask.status)
                return s.execute(q.where(PlaybookTask.account_id == account)).all()

        wait_for(
            "the champion-departure task", lambda: ("champion_departure", "open") in opened(), p
        )
        # a task that fails for good says why, and the rest carries on
        make_celery(Settings(redis_url=redis_url)).send_task(
            "healthbot.sync_source", args=["zendesk"], queue="sync"
        )
        wait_for("the failure on record", lambda: count(pg_engine, TaskFailure) == 1, p)
        with session_scope(pg_engine) as s:
            failure = s.execute(select(TaskFailure)).scalar_one()
        assert (failure.task, failure.args) == ("sync_source", "['zendesk']")
        assert "ZENDESK_" in failure.reason and failure.reason.startswith("PermanentConnectorError")


def _champion_of_a_hubspot_company(hs, portfolio) -> tuple[str, str]:
    gone = {a.external_id for a in portfolio.accounts if a.churned_on}  # former customers
    for c in portfolio.contacts:
        if c.is_champion and c.left_on is None and c.account_id in hs.company_ids.keys() - gone:
            return hs.company_ids[c.account_id], hs.contact_ids[c.external_id]
    raise AssertionError("the sandbox portfolio has no active champion in HubSpot")


def test_a_worker_killed_mid_writeback_then_restarted_writes_each_change_once(
    pg_engine, postgres_url, redis_url, procs
):
    portfolio = generate_portfolio(320, 60, seed=8, end=YESTERDAY)  # ~240 Salesforce accounts
    with crm_sandboxes(portfolio) as (sf, hs, settings):
        run = sync_all(pg_engine, settings)
        score_accounts(pg_engine, settings, MODEL, run.touched)
        queued = count(pg_engine, OutboxItem, OutboxItem.target == "salesforce")
        assert queued > 200  # two collection requests
        # the second request is applied by Salesforce; its answer never reaches the worker
        sf.server.inject(Fault("slow", path_contains="/composite/sobjects", times=1, delay=0))
        sf.server.inject(Fault("slow_answer", path_contains="/composite/sobjects", delay=60))
        p = procs(pipeline_env(settings, postgres_url, redis_url))
        p.worker()
        make_celery(Settings(redis_url=redis_url)).send_task(
            "healthbot.flush_crm", args=["salesforce"], queue="writeback"
        )
        wait_for(
            "the second collection request",
            lambda: sf.server.count("PATCH", "/composite/sobjects") >= 2,
            p,
        )
        time.sleep(0.5)
        p.kill("worker")
        assert count(pg_engine, OutboxItem, OutboxItem.sent_at.is_not(None)) == queued - 200
        p.worker("worker2")
        p.beat()  # its outbox sweep picks the rows up again
        wait_for(  # the sweep flushes HubSpot's rows too: every_score_shown reads both CRMs
            "an empty outbox",
            lambda: count(pg_engine, OutboxItem) == 0,
            p,
        )
        salesforce = {e for e, (src, *_) in newest_scores(pg_engine).items() if src == "salesforce"}
        assert len(salesforce) == queued
        assert {sf.applied[e] for e in salesforce} == {1}  # none lost, none twice
        assert every_score_shown(pg_engine, sf, hs)


def test_rate_limits_outages_row_locks_and_double_schedules_still_write_each_once(
    pg_engine, postgres_url, redis_url, procs
):
    portfolio = generate_portfolio(60, 90, seed=33, end=YESTERDAY)
    with crm_sandboxes(portfolio, sf_rate_limit_status=429) as (sf, hs, settings):
        run = sync_all(pg_engine, settings)
        score_accounts(pg_engine, settings, MODEL, run.touched)
        sf_ids = [e for e, (src, *_) in newest_scores(pg_engine).items() if src == "salesforce"]
        sf.row_locks = dict.fromkeys(sf_ids[:5], 2)  # locked for two attempts each
        sf.server.inject(
            Fault("rate_limit", path_contains="/composite/sobjects", times=8, retry_after=1)
        )
        hs.server.inject(Fault("server_error", path_contains="/batch/update", times=6))
        sf.server.reset_counts()
        p = procs(pipeline_env(settings, postgres_url, redis_url))
        p.worker(concurrency=3)
        app = make_celery(Settings(redis_url=redis_url))
        for _ in range(2):  # a schedule that fires twice
            for crm in ("salesforce", "hubspot"):
                app.send_task("healthbot.flush_crm", args=[crm], queue="writeback")
            app.send_task("healthbot.sync_source", args=["salesforce"], queue="sync")
        p.beat()
        wait_for("an empty outbox", lambda: count(pg_engine, OutboxItem) == 0, p, timeout=150)
        scores = newest_scores(pg_engine)
        assert {sf.applied[e] for e in sf_ids} == {1}
        assert {hs.applied[e] for e, (src, *_) in scores.items() if src == "hubspot"} == {1}
        assert every_score_shown(pg_engine, sf, hs)
        assert count(pg_engine, TaskFailure) == 0
