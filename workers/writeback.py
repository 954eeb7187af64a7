"""Flush the outbox to one CRM: the newest changed score of each account, in the largest
batches the CRM's API allows, each row leaving the outbox only once the CRM acknowledged it.

Per chunk (one request, or one Bulk API job): claim and commit (rows marked in flight) →
ask the CRM about rows a crash left in flight (a batched read; those it already holds are
not sent again) → write → settle and commit. A request that fails as a whole puts its rows
back and raises, so the caller (a Celery task, or `healthbot writeback`) retries later.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from connectors.base import ConnectorError, ScoreSink
from health.db import session_scope
from health.locks import exclusive
from health.models import OutboxItem
from health.outbox import RetryPolicy, claim, release, settle
from health.repo import utcnow


@dataclass
class FlushReport:
    target: str
    sent: int = 0  # rows written in this flush
    acknowledged: int = 0  # of which the CRM acknowledged
    verified: int = 0  # rows a crash left in flight that the CRM already held
    unchanged: int = 0  # left the outbox unsent: the CRM already shows these values
    retrying: int = 0
    parked: int = 0
    requests: int = 0
    seconds: float = 0.0
    skipped: str | None = None  # why nothing was done (another flush holds the lock)
    error: str | None = None  # a request that failed as a whole


def pending_count(engine: Engine, target: str, now: datetime) -> int:
    with session_scope(engine) as session:
        q = select(func.count()).where(
            OutboxItem.target == target,
            OutboxItem.parked_at.is_(None),
            (OutboxItem.next_attempt_at.is_(None)) | (OutboxItem.next_attempt_at < now),
        )
        return session.execute(q).scalar_one()


def flush_outbox(
    engine: Engine,
    sink: ScoreSink,
    *,
    policy: RetryPolicy = RetryPolicy(),
    clock: Callable[[], datetime] = utcnow,
    on_chunk: Callable[[FlushReport], None] | None = None,
) -> FlushReport:
    """Write every due outbox row for `sink`'s CRM. Holds the CRM's writeback lock; a second
    flush of the same CRM meanwhile returns at once with `skipped` set."""
    report, started = FlushReport(target=sink.name), time.perf_counter()
    calls_before = getattr(sink, "api_calls", 0)
    with exclusive(engine, f"writeback-{sink.name}") as mine:
        if not mine:
            report.skipped = "another writeback to this CRM is running"
            return report
        now = clock()  # rows refused in this flush are due again only after it
        size = sink.chunk_size(pending_count(engine, sink.name, now))
        while _flush_chunk(engine, sink, report, size=size, now=now, policy=policy):
            report.requests = getattr(sink, "api_calls", 0) - calls_before
            if on_chunk:
                on_chunk(report)
    report.requests = getattr(sink, "api_calls", 0) - calls_before
    report.seconds = time.perf_counter() - started
    return report


def _flush_chunk(
    engine: Engine, sink: ScoreSink, report: FlushReport, *, size: int, now, policy
) -> bool:
    """One claimed chunk written and settled; False when nothing was due."""
    with session_scope(engine) as session:
        claimed, dropped = claim(session=session, target=sink.name, limit=size, now=now)
    report.unchanged += dropped
    if not claimed:
        return dropped > 0  # a chunk of unchanged rows: look further
    try:
        unsure = [c.write for c in claimed if c.in_flight]
        held = sink.already_written(unsure) if unsure else set()
        to_send = [c.write for c in claimed if c.write.account_external_id not in held]
        result = sink.write(to_send) if to_send else None
    except ConnectorError as exc:
        with session_scope(engine) as session:
            release(session=session, claimed=claimed)
        report.error = str(exc)
        raise
    ok = held | set(result.ok if result else ())
    with session_scope(engine) as session:
        settled = settle(
            session=session,
            target=sink.name,
            claimed=claimed,
            ok=ok,
            errors=result.errors if result else {},
            now=now,
            policy=policy,
        )
    report.sent += len(to_send)
    report.verified += len(held)
    report.acknowledged += settled.acknowledged - len(held)
    report.retrying += settled.retrying
    report.parked += settled.parked
    return True
