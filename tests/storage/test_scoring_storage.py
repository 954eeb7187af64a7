"""Scoring against a real database: SQL statistics match the Python reference, rescoring is
idempotent and batched, history feeds trends. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import event, func, select

from health.db import session_scope
from health.models import Account, OutboxItem, Score, ScoreChange
from health.records import AccountRecord, AccountRef, Batch, ObservationRecord
from health.repo import store_batch
from health.scoring.model import load_model
from health.scoring.stats import summarize
from health.scoring_service import day_end, rescore
from health.settings import DEFAULT_MODEL_PATH
from health.stats_sql import signal_stats

MODEL = load_model(DEFAULT_MODEL_PATH)
DAY = date(2026, 11, 1)


def seed(engine, n_accounts: int = 5, days: int = 200, source: str = "salesforce") -> list:
    rng = random.Random(3)
    obs = []
    accounts = [
        AccountRecord(source=source, external_id=f"A{i}", name=f"Account {i}", domain=f"a{i}.test")
        for i in range(n_accounts)
    ]
    for i in range(n_accounts):
        ref = AccountRef(crm_id=f"A{i}")
        for d in range(days):
            at = datetime.combine(DAY - timedelta(days=days - 1 - d), datetime.min.time(), UTC)
            obs.append(ObservationRecord(ref, "active_users", at, rng.randint(10, 100), "usage"))
            if rng.random() < 0.1:
                obs.append(
                    ObservationRecord(
                        ref,
                        "nps",
                        at + timedelta(hours=rng.randint(0, 23)),
                        rng.randint(0, 10),
                        "survey",
                    )
                )
            if rng.random() < 0.02:
                obs.append(ObservationRecord(ref, "sev1_ticket", at + timedelta(hours=3), 1, "zd"))
        obs.append(ObservationRecord(ref, "seats", at, 120, "crm"))
    with session_scope(engine) as s:
        store_batch(
            session=s,
            source=source,
            batch=Batch(accounts=accounts, observations=obs),
            now=datetime.now(UTC),
        )
    return obs


def test_sql_statistics_match_the_python_reference(engine):
    obs = seed(engine)
    now = day_end(DAY) - timedelta(hours=5)  # mid-day: windows cut through observations
    with session_scope(engine) as s:
        ids = {a.external_id: a.id for a in s.exec(select(Account)).scalars()}
        sql = signal_stats(session=s, now=now, id_range=(0, 10**9))
    for ext, acc_id in ids.items():
        expected = summarize(
            ((o.signal, o.observed_at, o.value) for o in obs if o.account.crm_id == ext), now
        )
        got = sql[acc_id]
        assert set(got) == set(expected)
        for signal, ref in expected.items():
            g = got[signal]
            assert g.latest == ref.latest and g.latest_at == ref.latest_at
            for f in ("avg_7d", "avg_30d", "avg_90d", "sum_30d", "sum_90d", "baseline"):
                assert getattr(g, f) == pytest.approx(getattr(ref, f)), (signal, f)


def test_rescore_is_idempotent_and_keeps_point_in_time_history(engine):
    seed(engine, n_accounts=4)
    for d in range(40, -1, -1):  # forty days of daily scoring
        rescore(engine, MODEL, day=DAY - timedelta(days=d))
    with session_scope(engine) as s:
        n_scores = s.exec(select(func.count()).select_from(Score)).scalar_one()
        n_changes = s.exec(select(func.count()).select_from(ScoreChange)).scalar_one()
        latest = s.exec(select(Score).where(Score.score_date == DAY)).scalars().all()
    assert n_scores == 4 * 41
    assert all(s.trend_30d is not None for s in latest)  # history 30 days back exists
    assert all(s.reason.startswith("Account ") for s in latest)
    rescore(engine, MODEL, day=DAY)  # same day again: replaces, never duplicates
    with session_scope(engine) as s:
        assert s.exec(select(func.count()).select_from(Score)).scalar_one() == n_scores
        assert s.exec(select(func.count()).select_from(ScoreChange)).scalar_one() == n_changes
        outbox = s.exec(select(OutboxItem)).scalars().all()
    assert len(outbox) == 4 and {o.target for o in outbox} == {"salesforce"}


def test_rescore_queries_grow_with_batches_not_accounts(engine):
    seed(engine, n_accounts=30, days=20)
    statements = []
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    try:
        rescore(engine, MODEL, day=DAY, batch_size=10)
        small = len(statements)
        statements.clear()
        rescore(engine, MODEL, day=DAY, batch_size=30)
        large = len(statements)
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    assert large < small <= 3 * large + 3  # 3 batches cost about three times one batch
    assert large <= 12  # one batch of 30 accounts: a handful of statements, not 30+
