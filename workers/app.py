"""The Celery app: broker, queues, the one retry policy's settings, and the beat schedule.

`celery -A workers.app worker -Q sync,score,writeback,notify` runs the tasks (Procfile); `celery
-A workers.app beat` schedules them. Without REDIS_URL there is no broker: tasks run
in-process, eagerly (embedded mode), and `healthbot run` calls the pipeline directly.

Queues per kind of work, so each scales on its own machines and a slow CRM pull never delays
a writeback: sync (source pulls), score (rescoring), writeback (CRM writes), notify (Slack,
once it lands).
"""

from __future__ import annotations

from datetime import timedelta

from celery import Celery
from celery.schedules import crontab

from connectors.registry import configured_sinks, configured_sources
from health.settings import Settings, get_settings

QUEUES = ("sync", "score", "writeback", "notify")
ROUTES = {
    "healthbot.sync_source": {"queue": "sync"},
    "healthbot.start_sync_all": {"queue": "sync"},
    "healthbot.score_accounts": {"queue": "score"},
    "healthbot.start_rescore_all": {"queue": "score"},
    "healthbot.flush_crm": {"queue": "writeback"},
    "healthbot.start_flush_all": {"queue": "writeback"},
    "healthbot.send_digests": {"queue": "notify"},
    "healthbot.deliver_tasks": {"queue": "notify"},
    "healthbot.recheck_tasks": {"queue": "score"},
    "healthbot.sweep_tasks": {"queue": "score"},
}


def beat_schedule(settings: Settings) -> dict:
    """Each configured source synced every `SYNC_EVERY_MINUTES` (or its own entry in
    `SYNC_EVERY`); the outbox swept for retries; every account rescored once a day."""
    schedule = {
        f"sync-{name}": {
            "task": "healthbot.sync_source",
            "schedule": timedelta(
                minutes=settings.sync_every.get(name, settings.sync_every_minutes)
            ),
            "args": (name,),
        }
        for name in configured_sources(settings)
    }
    if configured_sinks(settings):
        schedule["writeback-sweep"] = {
            "task": "healthbot.start_flush_all",
            "schedule": timedelta(seconds=settings.writeback_every_seconds),
        }
    if settings.slack_bot_token is not None:
        schedule["slack-digests"] = {
            "task": "healthbot.send_digests",
            "schedule": crontab(minute="*/15"),  # 09:00 arrives in some time zone every 15 min
        }
        schedule["slack-tasks"] = {
            "task": "healthbot.deliver_tasks",
            "schedule": timedelta(minutes=1),
        }
    schedule["rescore-daily"] = {
        "task": "healthbot.start_rescore_all",
        "schedule": crontab(minute=0, hour=settings.rescore_hour_utc),
    }
    schedule["playbooks-recheck-daily"] = {  # after the rescore's changes have been acted on
        "task": "healthbot.recheck_tasks",
        "schedule": crontab(minute=30, hour=(settings.rescore_hour_utc + 1) % 24),
    }
    schedule["playbooks-sweep"] = {
        "task": "healthbot.sweep_tasks",
        "schedule": timedelta(minutes=5),
    }
    return schedule


def make_celery(settings: Settings | None = None) -> Celery:
    settings = settings or get_settings()
    celery = Celery("healthbot", include=["workers.tasks"])
    celery.conf.update(
        broker_url=settings.redis_url or "memory://",
        task_always_eager=settings.redis_url is None,  # embedded mode: run in-process
        task_eager_propagates=True,
        task_ignore_result=True,  # tasks report to the database, not to a result backend
        task_serializer="json",
        accept_content=["json"],
        task_acks_late=True,  # a task killed mid-way is redelivered ...
        task_reject_on_worker_lost=True,  # ... also when its worker process died
        worker_prefetch_multiplier=1,
        broker_transport_options={"visibility_timeout": settings.redis_visibility_timeout},
        broker_connection_retry_on_startup=True,
        task_default_queue="score",
        task_routes=ROUTES,
        beat_schedule=beat_schedule(settings),
        timezone="UTC",
    )
    return celery


app = make_celery()
