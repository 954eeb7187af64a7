"""The outbox on SQLite and PostgreSQL: a whole Bulk API job's worth of rows settles in one
go, and a score that arrives while its predecessor is on its way waits for the next flush."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import func, select

from health.db import session_scope
from health.models import CrmRecord, CrmWrite, OutboxItem, Score
from health.outbox import claim, settle
from health.records import AccountRecord, Batch
from health.repo import bulk_upsert, store_batch
from health.score_writes import queue_writebacks

AT = datetime(2026, 11, 2, tzinfo=UTC)
DAY = date(2026, 11, 1)


def seed(engine, n: int) -> None:
    records = [AccountRecord("salesforce", f"001{i:015d}", f"A{i}") for i in range(n)]
    with session_scope(engine) as s:
        store_batch(session=s, source="salesforce", batch=Batch(accounts=records), now=AT)
        pairs = s.execute(select(CrmRecord.account_id, CrmRecord.id)).all()
        scores = [score(acc, DAY, 50 + acc % 40) for acc, _ in pairs]
        written = dict(
            bulk_upsert(s, Score, scores, keys=("account_id", "score_date"), update=(),
                        returning=("account_id", "id"))
        )  # fmt: skip
        queue_writebacks(session=s, items=[item(acc, rec, written[acc], DAY) for acc, rec in pairs])


def score(acc: int, day: date, total: float) -> dict:
    return {
        "account_id": acc,
        "score_date": day,
        "computed_at": AT,
        "total": total,
        "tier": "monitor",
        "announced_tier": "monitor",
        "confidence": 1.0,
        "reason": f"A{acc} is Monitor at {total:.0f} (steady over 30 days): usage fell.",
        "model_version": "t",
    }


def item(acc: int, record: int, score_id: int, day: date) -> dict:
    return {
        "account_id": acc,
        "record_id": record,
        "target": "salesforce",
        "score_id": score_id,
        "score_date": day,
        "created_at": AT,
        "changed": True,
    }


def count(engine, table) -> int:
    with session_scope(engine) as s:
        return s.execute(select(func.count()).select_from(table)).scalar_one()


def test_a_bulk_jobs_worth_of_rows_settles_at_once(engine):
    seed(engine, 9000)  # more than PostgreSQL takes as one row-value IN list
    with session_scope(engine) as s:
        claimed, dropped = claim(session=s, target="salesforce", limit=10_000, now=AT)
    assert len(claimed) == 9000 and dropped == 0
    assert claimed[0].write.drivers == "usage fell."  # the drivers part of the sentence
    ok = {c.write.account_external_id for c in claimed}
    with session_scope(engine) as s:
        settled = settle(session=s, target="salesforce", claimed=claimed, ok=ok, errors={}, now=AT)
    assert settled.acknowledged == 9000
    assert count(engine, OutboxItem) == 0 and count(engine, CrmWrite) == 9000
    with session_scope(engine) as s:  # the same scores queued again (a same-day rescore)
        pairs = s.execute(select(Score.id, Score.account_id)).all()
        queue_writebacks(session=s, items=[item(acc, acc, sid, DAY) for sid, acc in pairs])
    assert count(engine, OutboxItem) == 9000
    with session_scope(engine) as s:  # the CRM already shows them: nothing to send
        claimed, dropped = claim(session=s, target="salesforce", limit=10_000, now=AT)
    assert claimed == [] and dropped == 9000 and count(engine, OutboxItem) == 0


def test_a_newer_score_waits_while_the_older_one_is_on_its_way(engine):
    seed(engine, 3)
    with session_scope(engine) as s:
        claimed, _ = claim(session=s, target="salesforce", limit=10, now=AT)
        first = claimed[0]
        later = [score(first.account_id, DAY + timedelta(days=1), 20)]
        newer = bulk_upsert(
            s, Score, later, keys=("account_id", "score_date"), update=(), returning=("id",)
        )
        queue_writebacks(
            session=s,
            items=[item(first.account_id, first.record_id, newer[0][0], DAY + timedelta(days=1))],
        )
    ok = {c.write.account_external_id for c in claimed}
    with session_scope(engine) as s:
        settle(session=s, target="salesforce", claimed=claimed, ok=ok, errors={}, now=AT)
        left = s.execute(select(OutboxItem)).scalars().all()
    assert [(o.account_id, o.score_id, o.sent_at) for o in left] == [
        (first.account_id, newer[0][0], None)
    ]
    with session_scope(engine) as s:
        again, _ = claim(session=s, target="salesforce", limit=10, now=AT)
    assert [(c.score_id, c.write.score, c.in_flight) for c in again] == [(newer[0][0], 20, False)]
