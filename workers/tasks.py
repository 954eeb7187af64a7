"""Celery tasks: thin wrappers around `workers.pipeline`, taking ids and names, never objects.

Each task is idempotent (upserts on natural keys, a lock per source and per CRM, an outbox
that deletes only what the CRM acknowledged), so a redelivery after a crash or a schedule
that fires twice does no harm. A task enqueues follow-up work only after the pipeline
function that created it has committed.

The one retry policy: a TransientConnectorError (rate limit, outage) is retried with
exponential backoff and jitter — or the vendor's Retry-After — a finite number of times,
never beyond the broker's visibility timeout; anything else fails at once. A task that fails
for good is recorded (`TaskFailure`) with why; the others carry on.
"""

from __future__ import annotations

import logging
import random
from datetime import date
from functools import cache

from celery import Task
from sqlalchemy import select

from connectors.base import TransientConnectorError
from connectors.registry import configured_sinks, configured_sources
from health.db import get_engine, session_scope
from health.models import Account, TaskFailure
from health.repo import chunked, utcnow
from health.scoring.model import ScoringModel, load_model
from health.settings import Settings, get_settings
from workers import pipeline
from workers.app import app

log = logging.getLogger(__name__)
SCORE_CHUNK = 2000  # accounts per scoring task: a full rescore fans out over these
MAX_RETRIES = 8
BACKOFF_BASE, BACKOFF_MAX = 5.0, 600.0


@cache
def model(path: str, min_confidence: float | None = None) -> ScoringModel:
    return load_model(path, min_confidence=min_confidence)


def context() -> tuple:
    settings = get_settings()
    return get_engine(settings.database_url), settings


def countdown(retries: int, retry_after: float | None, settings: Settings) -> float:
    """Seconds before the next try: the vendor's Retry-After when it sent one, else
    exponential backoff with jitter; always well inside the visibility timeout."""
    if retry_after is not None:
        wait = retry_after
    else:
        wait = random.uniform(0.5, 1.0) * min(BACKOFF_MAX, BACKOFF_BASE * 2**retries)
    return min(wait, settings.redis_visibility_timeout / 2)


class PipelineTask(Task):
    acks_late = True
    reject_on_worker_lost = True
    max_retries = MAX_RETRIES

    def __call__(self, *args, **kwargs):
        try:
            return super().__call__(*args, **kwargs)
        except TransientConnectorError as exc:
            if self.request.called_directly or self.request.retries >= self.max_retries:
                raise
            wait = countdown(self.request.retries, exc.retry_after, get_settings())
            log.warning("%s: %s; retrying in %.0f s", self.name, exc, wait)
            raise self.retry(exc=exc, countdown=wait) from exc

    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:
        engine, _ = context()
        with session_scope(engine) as session:
            session.add(
                TaskFailure(
                    task=self.name.removeprefix("healthbot.")[:64],
                    args=repr(list(args))[:500],
                    reason=f"{type(exc).__name__}: {exc}",
                    failed_at=utcnow(),
                )
            )


def task(name: str):
    return app.task(name=f"healthbot.{name}", base=PipelineTask, bind=True)


@task("sync_source")
def sync_source(self, name: str) -> dict:
    """Pull one source; then score the accounts whose data changed, in chunks."""
    engine, settings = context()
    report = pipeline.sync_named(engine, settings, name)
    for part in chunked(sorted(report.stored.touched_accounts), SCORE_CHUNK):
        score_accounts.delay(list(part))  # the batches are committed: safe to enqueue
    return report.as_dict()


@task("start_sync_all")
def start_sync_all(self) -> list[str]:
    names = configured_sources(get_settings())
    for name in names:
        sync_source.delay(name)
    return names


@task("score_accounts")
def score_accounts(self, account_ids: list[int], day: str | None = None) -> dict:
    """Score these accounts (for `day`, default today); changed scores go to the CRMs."""
    engine, settings = context()
    report = pipeline.score_accounts(
        engine,
        settings,
        model(str(settings.healthbot_model), settings.healthbot_min_confidence),
        account_ids,
        day=date.fromisoformat(day) if day else None,
    )
    if report.scored:  # the outbox knows what changed; the flush is cheap when nothing did
        start_flush_all.delay()
    if report.playbooks_error:
        log.error("%s", report.playbooks_error)
    opened = report.playbooks.opened if report.playbooks else 0
    return {"scored": report.scored, "changes": report.changes, "tasks_opened": opened}


@task("deliver_tasks")
def deliver_tasks(self) -> dict:
    """Beat, every minute: DMs about tasks opened, escalated or back from a snooze."""
    from workers.task_notices import deliver_tasks as deliver

    engine, settings = context()
    report = deliver(engine, settings, now=utcnow())
    return {"sent": report.sent, "failed": report.failed, "quiet": report.quiet}


@task("recheck_tasks")
def recheck_tasks(self) -> dict:
    """Daily: every account with a live task evaluated again (recovery), then the sweep."""
    engine, settings = context()
    return _applied(pipeline.recheck_tasks(engine, settings))


@task("sweep_tasks")
def sweep_tasks(self) -> dict:
    """Beat, every few minutes: overdue tasks escalate, ended snoozes come back."""
    engine, settings = context()
    return _applied(pipeline.sweep_tasks(engine, settings))


def _applied(report) -> dict:
    return {k: v for k, v in vars(report).items() if k != "opened_ids"}


@task("start_rescore_all")
def start_rescore_all(self, day: str | None = None) -> int:
    """Fan a full rescore out over chunks of account ids (a prefork worker cannot fork the
    pool `healthbot score` uses)."""
    engine, _ = context()
    with session_scope(engine) as session:
        ids = session.execute(
            select(Account.id).where(Account.deleted_at.is_(None)).order_by(Account.id)
        ).scalars()
        ids = list(ids)
    for part in chunked(ids, SCORE_CHUNK):
        score_accounts.delay(list(part), day)
    return len(ids)


@task("flush_crm")
def flush_crm(self, name: str) -> dict:
    engine, settings = context()
    report = pipeline.flush_crm(engine, settings, name)
    return {"target": name, "written": report.acknowledged, "skipped": report.skipped}


@task("start_flush_all")
def start_flush_all(self) -> list[str]:
    names = configured_sinks(get_settings())
    for name in names:
        flush_crm.delay(name)
    return names


@task("send_digests")
def send_digests(self) -> dict:
    """Beat, every 15 minutes: the digests whose 09:00 has come (each once a day)."""
    from workers.digests import send_digests as send

    engine, settings = context()
    report = send(engine, settings, now=utcnow())
    return {"sent": report.sent, "failed": report.failed, "waiting": report.waiting}
