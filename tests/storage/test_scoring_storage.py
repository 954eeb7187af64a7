"""Scoring against a real database: SQL statistics match the Python reference, rescoring is
idempotent and batched, history feeds trends. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import event, func, select

from health.db import session_scope
from health.models import Account, OutboxItem, Score, ScoreChange
from health.records import AccountRecord, AccountRef, Batch, ObservationRecord
from health.repo import store_batch
from health.rescore import rescore
from health.score_history import score_history, score_states_as_of, scores_as_of
from health.score_writes import day_end
from health.scoring.engine import plan_of
from health.scoring.model import load_model
from health.scoring.stats import Needs, summarize
from health.scoring.vector import fill
from health.settings import DEFAULT_MODEL_PATH
from health.stats_sql import signal_stats, stats_columns

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
            users = rng.randint(10, 100) if rng.random() < 0.6 or i == 0 else 0  # quiet days
            if rng.random() < 0.8 and not (i == 1 and d > days - 40):  # gaps; A1 stops
                obs.append(ObservationRecord(ref, "active_users", at, users, "usage"))
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
            for f in ("days_since_active", "active_week_share"):
                assert getattr(g, f) == pytest.approx(getattr(ref, f)), (signal, f)
    ages = {ext: sql[acc]["active_users"].days_since_active for ext, acc in ids.items()}
    assert ages["A0"] < 1 and 39 < ages["A1"] < 41  # A1's usage stopped 40 days ago


def test_sql_statistics_compute_only_what_the_model_reads(engine):
    seed(engine, n_accounts=3, days=40)
    now = day_end(DAY)
    needs = Needs.of([("csat", "avg_7d"), ("seats", "latest")])
    with session_scope(engine) as s:
        full = signal_stats(session=s, now=now, id_range=(0, 10**9))
        some = signal_stats(session=s, now=now, id_range=(0, 10**9), needs=needs)
    assert needs.windows == {7} and set(some) == set(full)
    for acc, signals in full.items():
        assert set(some[acc]) == set(signals)  # every signal seen still has its age
        for signal, ref in signals.items():
            got = some[acc][signal]
            assert got.latest_at == ref.latest_at
            assert got.days_since == pytest.approx(ref.days_since)
            assert got.avg_7d == pytest.approx(ref.avg_7d)
            assert got.latest == (ref.latest if signal == "seats" else None)
            assert got.avg_30d is got.avg_90d is got.sum_90d is got.baseline is None


def test_statistics_columns_hold_what_the_statistics_do(engine):
    seed(engine, n_accounts=5, days=50)
    now = day_end(DAY) - timedelta(hours=5)
    plan = plan_of(MODEL)
    with session_scope(engine) as s:
        ids = sorted(a.id for a in s.exec(select(Account)).scalars())
        ids = [*ids, 10**6]  # an account with no observations: all NaN
        stats = signal_stats(session=s, now=now, account_ids=ids, needs=MODEL.needs())
        by_range = stats_columns(
            session=s, now=now, ids=ids, columns=plan.columns, needs=MODEL.needs()
        )
        by_list = stats_columns(
            session=s, now=now, ids=ids, columns=plan.columns, needs=MODEL.needs(), dense=False
        )
        with pytest.raises(ValueError, match="ascending"):
            stats_columns(session=s, now=now, ids=ids[::-1], columns=plan.columns)
    expected = fill(plan.columns, [stats.get(i, {}) for i in ids])
    assert by_range.shape == (len(plan.columns), len(ids))
    assert np.isnan(by_range[:, -1]).all() and not np.isnan(by_range[:, 0]).all()
    np.testing.assert_allclose(by_range, expected, rtol=1e-12, equal_nan=True)
    np.testing.assert_array_equal(by_list, by_range)


def test_the_default_model_asks_for_what_its_metrics_and_hard_events_read():
    needs = MODEL.needs()
    # 30-day usage, sum_30d, sum_90d / avg_90d, baseline: no 7-day window (a quiet week of a
    # sparse product is no signal)
    assert needs.windows == {30, 90, 180}
    assert {"seats", "open_tickets", "nps", "champion_left", "sev1_ticket"} <= needs.latest_of
    assert "active_users" not in needs.latest_of  # read as averages, never as a last value
    assert needs.active_of == {"active_users"}  # days since last use, weeks active


def test_rescore_is_idempotent_and_keeps_point_in_time_history(engine):
    seed(engine, n_accounts=4)
    for d in range(40, -1, -1):  # forty days of daily scoring
        rescore(engine, MODEL, day=DAY - timedelta(days=d), targets=("salesforce",))
    with session_scope(engine) as s:
        n_scores = s.exec(select(func.count()).select_from(Score)).scalar_one()
        n_changes = s.exec(select(func.count()).select_from(ScoreChange)).scalar_one()
        latest = s.exec(select(Score).where(Score.score_date == DAY)).scalars().all()
    assert n_scores == 4 * 41
    assert all(s.trend_30d is not None for s in latest)  # history 30 days back exists
    assert all(s.reason.startswith("Account ") for s in latest)
    rescore(engine, MODEL, day=DAY, targets=("salesforce",))  # same day again: replaces
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


def test_sql_statistics_by_id_list_match_by_id_range(engine):
    seed(engine, n_accounts=4, days=40)
    now = day_end(DAY)
    with session_scope(engine) as s:
        ids = sorted(a.id for a in s.exec(select(Account)).scalars())
        by_range = signal_stats(session=s, now=now, id_range=(ids[0], ids[-1] + 1))
        by_list = signal_stats(session=s, now=now, account_ids=ids[::2])
    assert set(by_list) == set(ids[::2])
    assert by_list == {acc: by_range[acc] for acc in ids[::2]}


def test_newest_value_at_a_shared_instant_is_the_largest(engine):
    at = datetime.combine(DAY, datetime.min.time(), UTC)
    ref = AccountRef(crm_id="A0")
    obs = [
        ObservationRecord(ref, "csat", at - timedelta(days=1), 90, "zendesk"),
        ObservationRecord(ref, "csat", at, 40, "survey"),
        ObservationRecord(ref, "csat", at, 70, "zendesk"),
        ObservationRecord(ref, "csat", at, 55, "crm"),
    ]
    account = AccountRecord(source="salesforce", external_id="A0", name="Tie", domain="t.test")
    with session_scope(engine) as s:
        store_batch(
            session=s,
            source="salesforce",
            batch=Batch(accounts=[account], observations=obs),
            now=datetime.now(UTC),
        )
        (stats,) = signal_stats(session=s, now=day_end(DAY), id_range=(0, 10**9)).values()
    assert stats["csat"].latest == 70 and stats["csat"].latest_at == at
    assert stats["csat"].avg_7d == pytest.approx((90 + 40 + 70 + 55) / 4)


def scored_on_five_days(engine) -> list[int]:
    """Three accounts scored 40, 35, 31, 5 and 1 days before DAY; their ids."""
    seed(engine, n_accounts=3, days=60)
    for d in (40, 35, 31, 5, 1):
        rescore(engine, MODEL, day=DAY - timedelta(days=d))
    with session_scope(engine) as s:
        return sorted(a.id for a in s.exec(select(Account)).scalars())


def test_score_states_carry_what_the_full_scores_do(engine):
    ids = scored_on_five_days(engine)
    with session_scope(engine) as s:
        for lo, hi in ((None, DAY), (DAY - timedelta(37), DAY - timedelta(30)), (DAY, DAY)):
            full = scores_as_of(session=s, ids=ids, lo=lo, hi=hi)
            light = score_states_as_of(session=s, ids=ids, lo=lo, hi=hi, components=True)
            assert set(light) == set(full)
            for acc, row in light.items():
                for col in row._fields:
                    assert getattr(row, col) == getattr(full[acc], col), (lo, hi, col)


def test_score_history_reads_the_three_days_scoring_looks_back_to(engine):
    ids = scored_on_five_days(engine)
    with session_scope(engine) as s:
        history = score_history(session=s, ids=ids + [10**6], day=DAY)
        full = {
            "prev": scores_as_of(session=s, ids=ids, lo=None, hi=DAY - timedelta(1)),
            "ago30": scores_as_of(
                session=s, ids=ids, lo=DAY - timedelta(37), hi=DAY - timedelta(30)
            ),
            "ago90": scores_as_of(
                session=s, ids=ids, lo=DAY - timedelta(97), hi=DAY - timedelta(90)
            ),
        }
    assert history[10**6] == {"prev": None, "ago30": None, "ago90": None}  # no scores yet
    for acc in ids:
        assert history[acc]["ago90"] is None  # nothing scored 90 days back
        got, want = history[acc]["prev"], full["prev"][acc]
        assert (got.total, got.tier, got.announced_tier, got.pending_since) == (
            want.total,
            want.tier,
            want.announced_tier,
            want.pending_since,
        )
        assert history[acc]["ago30"].total == full["ago30"][acc].total
        assert history[acc]["ago30"].components == full["ago30"][acc].components
        assert full["prev"][acc].score_date == DAY - timedelta(1)
        assert full["ago30"][acc].score_date == DAY - timedelta(31)


def test_parallel_rescore_writes_what_a_single_process_does(engine):
    seed(engine, n_accounts=12, days=40)
    rescore(engine, MODEL, day=DAY - timedelta(days=1))

    def snapshot() -> dict:
        with session_scope(engine) as s:
            scores = s.exec(select(Score).where(Score.score_date == DAY)).scalars().all()
            changes = s.exec(select(ScoreChange)).scalars().all()
            outbox = s.exec(select(OutboxItem)).scalars().all()
            strip = lambda o: {k: v for k, v in o.model_dump().items() if k != "id"}  # noqa: E731
            return {
                "scores": sorted((strip(x) for x in scores), key=lambda r: r["account_id"]),
                "changes": sorted((strip(x) for x in changes), key=lambda r: r["score_id"]),
                "outbox": sorted((strip(x) for x in outbox), key=lambda r: r["account_id"]),
            }

    one = rescore(engine, MODEL, day=DAY, batch_size=5)
    first = snapshot()
    two = rescore(engine, MODEL, day=DAY, batch_size=5, workers=2)
    assert snapshot() == first
    assert (
        (two.scored, two.no_data, two.accounts)
        == (one.scored, one.no_data, one.accounts)
        == (
            12,
            0,
            12,
        )
    )
    if engine.dialect.name == "postgresql":  # SQLite: one process writes
        assert two.worker_statements > 0
