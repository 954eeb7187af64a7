"""The weight fit: non-negative, normalised, driven by what predicts churn, split by time."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np

from health.fit import fit_weights, proposed_model, time_split
from health.scoring.model import load_model
from health.settings import DEFAULT_MODEL_PATH

MODEL = load_model(DEFAULT_MODEL_PATH)


def test_the_metric_that_predicts_churn_gets_the_weight():
    rng = np.random.default_rng(4)
    n = 400
    scores = rng.uniform(0, 100, size=(n, 3))
    scores[rng.random((n, 3)) < 0.1] = np.nan  # some metrics missing
    risk = 1 / (1 + np.exp((np.nan_to_num(scores[:, 0], nan=50) - 50) / 8))
    churned = (rng.random(n) < risk).astype(float)
    days = [date(2025, 1, 1) + timedelta(days=i) for i in range(n)]
    fit = fit_weights(
        scores, churned, days, ["usage", "noise", "more_noise"], lead_days=30, current=[1, 1, 1]
    )
    assert fit.cv_auc is not None and fit.cv_auc > 0.8
    assert all(w >= 0 for w in fit.weights.values())
    assert abs(sum(fit.weights.values()) - 100) < 0.05
    assert fit.weights["usage"] > 60 > max(fit.weights["noise"], fit.weights["more_noise"])


def test_held_out_outcomes_come_after_every_training_outcome_plus_the_lead():
    days = [date(2026, 1, 1) + timedelta(days=3 * i) for i in range(100)]
    split = time_split(days, 30)
    assert split is not None
    last_train = max(days[i] for i in split.train)
    first_held = min(days[i] for i in split.held_out)
    assert first_held - timedelta(days=30) > last_train
    assert len(split.held_out) >= 30
    assert time_split(days[:3], 30) is None


def test_the_proposal_is_a_valid_model_without_the_dropped_metrics():
    (c1, first), *_, (c2, last) = MODEL.components.items()
    m1, m2 = next(iter(first.metrics)), next(iter(last.metrics))
    weights = {k: 0.0 for c in MODEL.components.values() for k in c.metrics}
    weights |= {m1: 60.0, m2: 40.0}
    proposal = proposed_model(MODEL, weights, version="v-fit")
    assert set(proposal.components) == {c1, c2}
    assert proposal.components[c1].weight == 60.0
    assert list(proposal.components[c2].metrics) == [m2]
    assert proposal.version == "v-fit" and proposal.tiers == MODEL.tiers
