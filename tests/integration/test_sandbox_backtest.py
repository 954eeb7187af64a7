"""The default model against the sandbox's renewals, as `healthbot demo` shows them: the score
90 days before each renewal ranks the churners above the renewers (issue 10's bar, AUC >= 0.80),
and the weights `--fit` learns do at least as well on the later renewals it never saw."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from connectors.sandbox.portfolio import (
    account_records,
    generate_portfolio,
    observation_records,
    outcome_records,
)
from health.backfill import backfill_scores
from health.backtest_read import backtest_report
from health.calibration import fit_report
from health.db import make_engine, session_scope
from health.migrate import upgrade
from health.records import Batch
from health.repo import store_batch
from health.scoring.model import load_model
from health.settings import DEFAULT_MODEL_PATH


def test_default_model_predicts_the_sandbox_renewals_90_days_ahead(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'sandbox.db'}")
    upgrade(engine)
    p = generate_portfolio(400, 365, seed=5)
    batch = Batch(
        accounts=account_records(p),
        observations=list(observation_records(p)),
        outcomes=outcome_records(p),
    )
    with session_scope(engine) as s:
        store_batch(session=s, source="sandbox", batch=batch, now=datetime.now(UTC))
    model = load_model(DEFAULT_MODEL_PATH)
    backfill_scores(engine, model, start=p.start + timedelta(days=30), end=p.end, every=7)
    with session_scope(engine) as s:
        r = backtest_report(session=s, lead_days=90)
        fit, _ = fit_report(session=s, lead_days=90, model=model)
    assert r["outcomes"] >= 200 and r["churned"] >= 20, (r["outcomes"], r["churned"])
    assert r["auc"] >= 0.80, r["auc"]
    assert r["precision"] >= 0.5  # "at risk or critical" 90 days out is mostly right
    assert fit["proposed"]["auc"] >= fit["current"]["auc"] - 0.02, fit
