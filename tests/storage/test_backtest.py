"""Backtest, shadow and fit over a stored history with known outcomes (SQLite and PostgreSQL):
what they measure, and that nothing from after the lead day leaks into it."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, func, select

from health.backfill import backfill_scores
from health.backtest import Case, evaluate
from health.backtest_read import backtest_report
from health.calibration import fit_report, shadow_report
from health.db import session_scope
from health.models import Outcome, Score
from health.records import Batch, ObservationRecord
from health.repo import store_batch
from health.scoring.model import load_model
from health.settings import DEFAULT_MODEL_PATH
from tests.history import END, history

# the histories carry part of the model's signals: no confidence floor, so that every outcome
# is ranked (the floor itself is tested in test_insufficient_data)
MODEL = load_model(DEFAULT_MODEL_PATH, min_confidence=0.0)
LEAD = 30


def stored(engine, n: int = 30):
    h = history(n)
    with session_scope(engine) as s:
        store_batch(session=s, source="csv", batch=h.batch(), now=datetime.now(UTC))
    backfill_scores(engine, MODEL, start=END - timedelta(days=239), end=END, every=7)
    return h


def run(engine, **kw) -> dict:
    with session_scope(engine) as s:
        return backtest_report(session=s, lead_days=kw.pop("lead_days", LEAD), **kw)


def test_backtest_measures_a_history_whose_churners_faded(engine):
    stored(engine)
    r = run(engine)
    assert r["outcomes"] == 30 and r["churned"] == 15 and r["without_score"] == 0
    assert r["auc"] >= 0.8
    assert sum(b["outcomes"] for b in r["bands"]) == 30
    assert set(r["segments"]) == {"smb", "mid_market"}
    assert sum(s["outcomes"] for s in r["segments"].values()) == 30
    assert r["model_version"] == MODEL.version and set(r["model_versions"]) == {MODEL.version}
    assert {c["csm"] for c in r["csm_sentiment"]} == {"csm0@example.test", "csm1@example.test"}
    assert all(c["auc"] is not None and c["auc"] > 0.5 for c in r["csm_sentiment"])
    assert r["first_warning"]["churns"] == 15
    smb = run(engine, segment="smb")
    assert smb["outcomes"] == r["segments"]["smb"]["outcomes"]


def test_outcomes_shuffled_across_accounts_score_near_chance(engine):
    stored(engine)
    with session_scope(engine) as s:
        rows = s.execute(select(Outcome.id, Outcome.kind)).all()
    rng, aucs = random.Random(9), []
    for _ in range(8):
        kinds = [k for _, k in rows]
        rng.shuffle(kinds)
        with session_scope(engine) as s:
            for (oid, _), kind in zip(rows, kinds, strict=True):
                s.execute(Outcome.__table__.update().where(Outcome.id == oid).values(kind=kind))
        aucs.append(run(engine)["auc"])
    assert abs(sum(aucs) / len(aucs) - 0.5) < 0.15, aucs


def test_observations_dated_after_the_lead_day_change_nothing(engine):
    h = stored(engine)
    before = run(engine)
    late = [  # every renewer goes silent, every churner comes back, after its lead day
        ObservationRecord(
            o.account, "active_users", datetime.combine(day, datetime.min.time(), UTC),
            0.0 if o.kind == "renewed" else 60.0, "late",
        )
        for o in h.outcomes
        for d in range(1, LEAD)
        for day in [o.occurred_on - timedelta(days=LEAD - d)]
    ]  # fmt: skip
    with session_scope(engine) as s:
        store_batch(session=s, source="late", batch=Batch(observations=late), now=datetime.now(UTC))
    backfill_scores(engine, MODEL, start=END - timedelta(days=239), end=END, every=7, replace=True)
    after = run(engine)
    for key in ("outcomes", "churned", "auc", "precision", "recall", "accuracy", "bands"):
        assert after[key] == before[key], key
    assert after["false_negatives"] == before["false_negatives"]
    changed = run(engine, lead_days=1)  # a lead day after the late data: it is seen there
    assert changed["auc"] != before["auc"]


def test_too_few_outcomes_are_said_in_words(engine):
    stored(engine, n=6)
    r = run(engine)
    assert r["auc"] is None and r["problem"].startswith("only 6 outcomes")


def test_backtest_reads_a_fixed_number_of_statements(engine):
    stored(engine, n=12)
    statements = []

    def count(*_args) -> None:
        statements.append(1)

    event.listen(engine, "before_cursor_execute", count)
    try:
        run(engine)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(statements) <= 5


def test_fit_proposes_weights_judged_on_later_outcomes_and_shadow_writes_nothing(engine):
    stored(engine, n=40)
    with session_scope(engine) as s:
        scores_before = s.scalar(select(func.count()).select_from(Score))
        report, proposal = fit_report(session=s, model=MODEL, lead_days=LEAD)
    assert report["problem"] is None and proposal is not None
    assert report["train"] + report["held_out"] <= report["outcomes"] == 40
    assert report["current"]["outcomes"] == report["proposed"]["outcomes"] == report["held_out"]
    assert sum(c["proposed"] for c in report["components"].values()) == pytest.approx(100, abs=0.1)
    assert all(w["proposed"] >= 0 for w in report["weights"].values())
    assert proposal.version.endswith(report["cutoff"])
    assert report["proposed"]["auc"] is not None and report["proposed"]["auc"] >= 0.7
    with session_scope(engine) as s:
        shadow = shadow_report(session=s, current=MODEL, candidate=proposal, lead_days=LEAD)
        assert s.scalar(select(func.count()).select_from(Score)) == scores_before
    assert shadow["candidate"]["model_version"] == proposal.version
    assert shadow["current"]["outcomes"] == shadow["candidate"]["outcomes"] == 40


def test_fit_without_enough_history_says_what_to_do(engine):
    stored(engine, n=6)
    with session_scope(engine) as s:
        report, proposal = fit_report(session=s, model=MODEL, lead_days=200)
    assert proposal is None and "import or backfill a longer history" in report["problem"]


def test_shadow_and_the_stored_backtest_agree_on_the_same_model(engine):
    """The shadow path (statistics from observations, no history) ranks like the stored
    scores of the same model: the totals are the same numbers."""
    stored(engine)
    with session_scope(engine) as s:
        shadow = shadow_report(session=s, current=MODEL, candidate=MODEL, lead_days=LEAD)
    stored_auc = run(engine)["auc"]
    assert shadow["current"]["auc"] == shadow["candidate"]["auc"]
    assert abs(shadow["current"]["auc"] - stored_auc) < 0.05


def test_evaluate_on_cases_built_from_a_report_is_consistent():
    cases = [
        Case(i, "x", None, None, k, END, END, t, "healthy" if t >= 80 else "at_risk", "v")
        for i, (t, k) in enumerate([(90, "renewed"), (30, "churned")] * 6)
    ]
    assert evaluate(cases).auc == 1.0
