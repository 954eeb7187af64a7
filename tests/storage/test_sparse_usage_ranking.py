"""The default model ranks churners of a weekly, sparse portfolio (most customers active a few
weeks a month, churners fading out) above renewers, through the SQL statistics a rescore reads,
and spreads the accounts over the tiers. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from sklearn.metrics import roc_auc_score
from sqlalchemy import select

from health.db import session_scope
from health.models import Account, Score
from health.records import Batch
from health.repo import store_batch
from health.rescore import rescore
from health.scoring.model import load_model
from health.settings import DEFAULT_MODEL_PATH
from tests.sparse_portfolio import sparse_portfolio

MODEL = load_model(DEFAULT_MODEL_PATH)


def test_default_model_ranks_churners_of_a_sparse_weekly_portfolio(engine):
    p = sparse_portfolio()
    with session_scope(engine) as s:
        store_batch(
            session=s,
            source="salesforce",
            batch=Batch(accounts=p.accounts, observations=p.observations),
            now=datetime.now(UTC),
        )
    report = rescore(engine, MODEL, day=p.today, batch_size=100)
    assert report.scored == len(p.accounts)
    with session_scope(engine) as s:
        rows = s.execute(
            select(Account.external_id, Score.total, Score.tier, Score.confidence)
            .join(Score, Score.account_id == Account.id)
            .where(Score.score_date == p.today)
        ).all()
    churned = [p.churned[ext] for ext, *_ in rows]
    risk = [-total for _, total, _, _ in rows]
    assert 30 <= sum(churned) <= 90  # both classes well represented
    auc = roc_auc_score(churned, risk)
    assert auc >= 0.85, auc  # a 7-day-average model reads every quiet week as a collapse
    tiers = Counter(tier for _, _, tier, _ in rows)
    assert max(tiers.values()) <= len(rows) / 2, tiers  # not most accounts in one tier
    assert len(tiers) >= 3 and "insufficient" not in tiers  # usage data: enough for a tier
    # the churners sit in the risk tiers, the renewers mostly above them
    risky = {"at_risk", "critical"}
    caught = sum(c and t in risky for c, (_, _, t, _) in zip(churned, rows, strict=True))
    flagged = sum(t in risky for _, _, t, _ in rows)
    assert caught / sum(churned) >= 0.75 and caught / flagged >= 0.5
