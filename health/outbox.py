"""The outbox's side of a writeback: claim the rows due for one CRM, then settle them with
what the CRM answered. The CRM calls themselves are the caller's (workers.writeback).

A claim marks its rows in flight (`sent_at`) and commits before anything is sent. Settling
deletes a row only when the CRM acknowledged it and the row still points at the score that
was sent (a newer score stays queued); refused rows keep the CRM's code and message, and are
retried later (transient) or parked (permanent, or too many attempts). A row found in flight
at claim time was cut off by a crash: the caller asks the CRM whether it holds the values.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select, update
from sqlmodel import Session

from health.models import Account, CrmRecord, CrmWrite, OutboxItem, Score
from health.records import ScoreWrite, WriteError
from health.repo import bulk_upsert, chunked


@dataclass(frozen=True)
class RetryPolicy:
    base_seconds: float = 30.0  # first retry of a refused record; doubled per attempt
    max_seconds: float = 3600.0
    max_permanent: int = 3  # a permanent refusal is parked after this many attempts
    max_transient: int = 10  # so is a record that keeps failing transiently

    def delay(self, attempts: int) -> timedelta:
        return timedelta(seconds=min(self.max_seconds, self.base_seconds * 2 ** (attempts - 1)))


@dataclass(frozen=True)
class Claimed:
    outbox_id: int
    account_id: int
    record_id: int
    score_id: int
    write: ScoreWrite
    fingerprint: str
    attempts: int  # this one included
    in_flight: bool  # cut off by a crash last time: the CRM may already hold it


@dataclass
class Settled:
    acknowledged: int = 0
    retrying: int = 0
    parked: int = 0


def drivers_line(reason: str) -> str:
    """The drivers part of a score's sentence ("Acme is At risk at 52 (...): the champion left;
    usage fell ...") — what moved it, in one line."""
    head, sep, drivers = reason.partition("): ")
    return drivers if sep else reason


def fingerprint(w: ScoreWrite) -> str:
    """What the CRM shows, less the time: the same fingerprint means nothing to send."""
    trend = "" if w.trend_30d is None else f"{w.trend_30d:.0f}"
    text = f"{w.score}|{w.tier}|{trend}|{w.drivers}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def claim(*, session: Session, target: str, limit: int, now: datetime) -> tuple[list[Claimed], int]:
    """Up to `limit` rows due for `target` (retries due before `now`: a row refused during a
    flush waits for the next one), marked in flight. Rows whose values the CRM
    already shows, or whose account is gone, leave the outbox here unsent.
    Returns (claimed, dropped)."""
    due = or_(OutboxItem.next_attempt_at.is_(None), OutboxItem.next_attempt_at < now)
    rows = session.execute(
        select(
            OutboxItem.id,
            OutboxItem.account_id,
            OutboxItem.record_id,
            OutboxItem.score_id,
            OutboxItem.sent_at,
            OutboxItem.attempts,
            CrmRecord.external_id,
            CrmRecord.deleted_at,
            Score.total,
            Score.announced_tier,
            Score.trend_30d,
            Score.reason,
            Score.computed_at,
            CrmWrite.fingerprint,
        )
        .join(CrmRecord, CrmRecord.id == OutboxItem.record_id)
        .join(Score, Score.id == OutboxItem.score_id)
        .outerjoin(CrmWrite, CrmWrite.record_id == OutboxItem.record_id)
        .where(OutboxItem.target == target, OutboxItem.parked_at.is_(None), due)
        .order_by(OutboxItem.id)
        .limit(limit)
    ).all()
    claimed, dropped = [], []
    for (
        oid,
        acc,
        rec,
        sid,
        sent_at,
        n,
        ext,
        deleted_at,
        total,
        tier,
        trend,
        reason,
        at,
        shown,
    ) in rows:
        write = ScoreWrite(
            account_external_id=ext,
            score=round(total),
            tier=tier,
            trend_30d=None if trend is None else round(trend, 1),
            drivers=drivers_line(reason),
            updated_at=min(at, now),
        )
        fp = fingerprint(write)
        if deleted_at is not None or fp == shown:
            dropped.append(oid)
        else:
            claimed.append(
                Claimed(oid, acc, rec, sid, write, fp, n + 1, in_flight=sent_at is not None)
            )
    if dropped:
        session.execute(delete(OutboxItem).where(OutboxItem.id.in_(dropped)))
    if claimed:
        session.execute(
            update(OutboxItem)
            .where(OutboxItem.id.in_([c.outbox_id for c in claimed]))
            .values(sent_at=now, attempts=OutboxItem.attempts + 1)
        )
    return claimed, len(dropped)


def release(*, session: Session, claimed: Sequence[Claimed]) -> None:
    """A request that failed as a whole (rate limit, outage, timeout): the attempt does not
    count against the rows. They stay marked in flight — a timed-out write may have landed —
    so the next flush asks the CRM before sending them again."""
    if claimed:
        session.execute(
            update(OutboxItem)
            .where(OutboxItem.id.in_([c.outbox_id for c in claimed]))
            .values(attempts=OutboxItem.attempts - 1)
        )


def settle(
    *,
    session: Session,
    target: str,
    claimed: Sequence[Claimed],
    ok: set[str],
    errors: dict[str, WriteError],
    now: datetime,
    policy: RetryPolicy = RetryPolicy(),
) -> Settled:
    """Record what the CRM answered for each claimed row (ok: acknowledged external ids)."""
    out = Settled()
    acked = [c for c in claimed if c.write.account_external_id in ok]
    refused = [c for c in claimed if c.write.account_external_id not in ok]
    if acked:  # a row leaves only if no newer score arrived meanwhile; else it waits again
        sent = {c.outbox_id: c.score_id for c in acked}
        now_points = _score_ids(session, list(sent))
        done = [i for i, sid in now_points.items() if sid == sent[i]]
        newer = [i for i, sid in now_points.items() if sid != sent[i]]
        for part in chunked(done):
            session.execute(delete(OutboxItem).where(OutboxItem.id.in_(part)))
        for part in chunked(newer):
            session.execute(
                update(OutboxItem).where(OutboxItem.id.in_(part)).values(sent_at=None, attempts=0)
            )
        bulk_upsert(
            session,
            CrmWrite,
            [
                {
                    "account_id": c.account_id,
                    "record_id": c.record_id,
                    "target": target,
                    "external_id": c.write.account_external_id,
                    "score_id": c.score_id,
                    "fingerprint": c.fingerprint,
                    "written_at": now,
                }
                for c in acked
            ],
            keys=("record_id",),
            update=("account_id", "external_id", "score_id", "fingerprint", "written_at"),
        )
    changes = []
    for c in refused:
        err = errors.get(c.write.account_external_id) or WriteError(
            "NOT_ACKNOWLEDGED", "the CRM gave no answer for this record", transient=True
        )
        park = c.attempts >= (policy.max_transient if err.transient else policy.max_permanent)
        changes.append(
            {
                "id": c.outbox_id,
                "sent_at": None,
                "error_code": err.code[:64],
                "last_error": err.message,
                "parked_at": now if park else None,
                "next_attempt_at": None if park else now + policy.delay(c.attempts),
            }
        )
        out.parked += park
    if changes:  # one executemany by primary key
        session.execute(update(OutboxItem), changes)
    out.acknowledged, out.retrying = len(acked), len(refused) - out.parked
    return out


def _score_ids(session: Session, ids: list[int]) -> dict[int, int]:
    """outbox row id -> the score it points at now (read under a row lock on PostgreSQL, so a
    rescore committing meanwhile waits for this settle, never the other way round)."""
    out: dict[int, int] = {}
    for part in chunked(ids):
        q = select(OutboxItem.id, OutboxItem.score_id).where(OutboxItem.id.in_(part))
        if session.get_bind().dialect.name == "postgresql":
            q = q.with_for_update()
        out.update(session.execute(q).all())
    return out


@dataclass(frozen=True)
class OutboxRow:
    target: str
    account: str
    external_id: str
    attempts: int
    state: str  # in flight / retrying / pending / parked
    error_code: str | None
    last_error: str | None
    since: datetime


def outbox_rows(*, session: Session, limit: int = 200) -> tuple[dict[tuple[str, str], int], list]:
    """For `healthbot writeback --status`: counts per (CRM, state), and the rows that carry an
    error (parked first), newest problems first."""
    rows = session.execute(
        select(
            OutboxItem.target,
            Account.name,
            CrmRecord.external_id,
            OutboxItem.attempts,
            OutboxItem.parked_at,
            OutboxItem.sent_at,
            OutboxItem.error_code,
            OutboxItem.last_error,
            OutboxItem.created_at,
        )
        .join(Account, Account.id == OutboxItem.account_id)
        .join(CrmRecord, CrmRecord.id == OutboxItem.record_id)
    ).all()
    counts: dict[tuple[str, str], int] = {}
    problems = []
    for target, name, ext, attempts, parked, sent, code, msg, created in rows:
        state = "parked" if parked else "in flight" if sent else "retrying" if code else "pending"
        counts[(target, state)] = counts.get((target, state), 0) + 1
        if code:
            problems.append(
                OutboxRow(target, name, ext, attempts, state, code, msg, parked or created)
            )
    problems.sort(key=lambda r: (r.state != "parked", -r.since.timestamp()))
    return counts, problems[:limit]


def unpark(*, session: Session, target: str | None = None) -> int:
    """Give parked rows (of one CRM, or all) another round of attempts, once their cause is
    fixed in the CRM. Returns how many."""
    q = update(OutboxItem).where(OutboxItem.parked_at.is_not(None))
    if target is not None:
        q = q.where(OutboxItem.target == target)
    done = session.execute(q.values(parked_at=None, attempts=0, next_attempt_at=None))
    return done.rowcount
