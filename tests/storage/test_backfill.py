"""Backfill: score history rebuilt from stored observations, each day seeing only what was
observed before it ended. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import event, func, select

from health.backfill import backfill_scores, grid
from health.db import session_scope
from health.models import Account, Score
from health.records import AccountRecord, AccountRef, Batch, ObservationRecord
from health.repo import store_batch
from health.rescore import rescore
from health.scoring.engine import tier_for
from health.scoring.model import Bands, parse_model
from tests.storage.test_scoring_storage import DAY, MODEL, seed


def totals(engine, day: date) -> dict[int, float]:
    with session_scope(engine) as s:
        q = select(Score.account_id, Score.total).where(Score.score_date == day)
        return dict(s.execute(q).all())


def test_grid_ends_on_the_last_day():
    assert grid(date(2026, 1, 1), date(2026, 1, 20), 7) == [
        date(2026, 1, 6),
        date(2026, 1, 13),
        date(2026, 1, 20),
    ]
    assert grid(date(2026, 1, 1), date(2026, 1, 3), 1)[0] == date(2026, 1, 1)


def test_backfill_scores_each_day_as_the_live_rescore_would(engine):
    seed(engine, n_accounts=6, days=200)
    report = backfill_scores(engine, MODEL, start=DAY - timedelta(days=120), end=DAY, every=7)
    assert report.days == len(grid(DAY - timedelta(days=120), DAY, 7)) == 18
    assert report.scored == 6 * 18 and report.kept == 0
    with session_scope(engine) as s:
        days = set(s.scalars(select(Score.score_date).distinct()))
        trends = list(s.scalars(select(Score.trend_30d).where(Score.score_date == DAY)))
    assert days == set(grid(DAY - timedelta(days=120), DAY, 7))
    assert all(t is not None for t in trends)  # the grid's earlier days are its history
    day = DAY - timedelta(days=35)
    backfilled = totals(engine, day)
    rescore(engine, MODEL, day=day)  # statistics from SQL, the live path
    assert totals(engine, day) == backfilled


def test_observations_dated_after_a_day_change_nothing_on_it(engine):
    seed(engine, n_accounts=4, days=200)
    day = DAY - timedelta(days=60)
    backfill_scores(engine, MODEL, start=day, end=DAY, every=30)
    before, later = totals(engine, day), totals(engine, DAY)
    with session_scope(engine) as s:
        exts = list(s.scalars(select(Account.external_id)))
        late = [
            ObservationRecord(AccountRef(crm_id=e), signal, at, value, "late")
            for e in exts
            for signal, value in (("active_users", 0.0), ("sev1_ticket", 1.0), ("nps", 0.0))
            for at in (
                datetime.combine(day + timedelta(days=1), datetime.min.time(), UTC),
                datetime.combine(DAY - timedelta(days=2), datetime.min.time(), UTC),
            )
        ]
        store_batch(session=s, source="late", batch=Batch(observations=late), now=datetime.now(UTC))
    backfill_scores(engine, MODEL, start=day, end=DAY, every=30, replace=True)
    assert totals(engine, day) == before
    assert totals(engine, DAY) != later  # the same data did reach the later day


def test_stored_scores_are_kept_unless_replaced(engine):
    seed(engine, n_accounts=3, days=120)
    rescore(engine, MODEL, day=DAY)
    with session_scope(engine) as s:
        s.execute(Score.__table__.update().values(total=1.5))  # a live score of its own
    report = backfill_scores(engine, MODEL, start=DAY - timedelta(days=14), end=DAY, every=7)
    assert report.kept == 3 and report.scored == 6
    assert set(totals(engine, DAY).values()) == {1.5}
    backfill_scores(engine, MODEL, start=DAY - timedelta(days=14), end=DAY, every=7, replace=True)
    assert 1.5 not in set(totals(engine, DAY).values())


def test_renewal_date_is_left_out_before_it_was_known(engine):
    """A renewal window that tightens the bands by 19 points: the live score of a day uses
    it, the backfilled score of a day before the renewal date was known does not."""
    data = MODEL.model_dump()
    data["tiers"]["lifecycle"]["renewal_window"] = {"days": 90, "adjust": 19}
    data["tiers"]["min_confidence"] = 0.0  # the seed carries part of the model: rank them all
    model = parse_model(data)
    seed(engine, n_accounts=6, days=120)
    with session_scope(engine) as s:
        s.execute(Account.__table__.update().values(renewal_date=DAY + timedelta(days=30)))
    day = DAY - timedelta(days=7)
    backfill_scores(engine, model, start=day, end=day, renewal_known_from=DAY)
    with session_scope(engine) as s:
        blind = dict(s.execute(select(Score.account_id, Score.tier)).all())
    rescore(engine, model, day=day)  # the live path: the renewal date is today's, known
    with session_scope(engine) as s:
        live = dict(s.execute(select(Score.account_id, Score.total)).all())
    base = model.tiers.bands
    window = Bands(healthy=99, monitor=79, at_risk=59)
    assert blind == {a: tier_for(t, base) for a, t in live.items()}
    assert any(tier_for(t, base) != tier_for(t, window) for t in live.values())


def test_backfill_statements_grow_with_batches_not_accounts(engine):
    seed(engine, n_accounts=12, days=60)
    statements = []

    def count(*_args) -> None:
        statements.append(1)

    event.listen(engine, "before_cursor_execute", count)
    try:
        backfill_scores(engine, MODEL, start=DAY - timedelta(days=28), end=DAY, every=7)
        few = len(statements)
        seed_more(engine, 24)
        statements.clear()
        backfill_scores(
            engine, MODEL, start=DAY - timedelta(days=28), end=DAY, every=7, replace=True
        )
    finally:
        event.remove(engine, "before_cursor_execute", count)
    with session_scope(engine) as s:
        assert s.scalar(select(func.count()).select_from(Score)) == 36 * 5
    assert len(statements) <= few + 2


def seed_more(engine, n: int) -> None:
    obs = [
        ObservationRecord(
            AccountRef(crm_id=f"B{i}"),
            "active_users",
            datetime.combine(DAY - timedelta(days=d), datetime.min.time(), UTC),
            10.0 + d,
            "usage",
        )
        for i in range(n)
        for d in range(60)
    ]
    accounts = [AccountRecord("salesforce", f"B{i}", f"B {i}") for i in range(n)]
    with session_scope(engine) as s:
        store_batch(
            session=s,
            source="salesforce",
            batch=Batch(accounts=accounts, observations=obs),
            now=datetime.now(UTC),
        )


def test_the_brief_says_when_observations_predate_the_score_history(engine):
    from health.briefs import account_brief

    seed(engine, n_accounts=1, days=120)
    rescore(engine, MODEL, day=DAY)
    with session_scope(engine) as s:
        account = s.exec(select(Account)).scalars().one()
        brief = account_brief(session=s, account=account, model=MODEL)
    assert brief.history == [brief.line.total]  # one score: a one-day sparkline
    first = (DAY - timedelta(days=119)).isoformat()
    assert brief.history_gap == (
        f"Score history starts {DAY}, but observations go back to {first}: "
        "run `healthbot score --backfill` to fill the trend and sparkline."
    )
    backfill_scores(engine, MODEL, start=DAY - timedelta(days=119), end=DAY, every=7)
    with session_scope(engine) as s:
        brief = account_brief(session=s, account=account, model=MODEL)
    assert brief.history_gap is None and len(brief.history) == 18
