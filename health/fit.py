"""Learn a model's weights from outcomes: a regularised logistic regression of churn on the
metric scores (0-100) at each outcome's lead day, with non-negative weights (more of a
healthy metric never raises the risk), normalised to 100 as the model's shares.

Time decides everything: outcomes are ordered by date; the regularisation is chosen by
time-series cross-validation (each fold trains only on outcomes settled before the
validation outcomes' lead day), and the proposal is judged on held-out outcomes whose lead
day falls after every training outcome had happened. The total is linear in the metric
scores (a component score is their weighted mean), so fitting metrics fits components too.
Pure: arrays in, weights and a model out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
from scipy.optimize import minimize
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import TimeSeriesSplit

from health.scoring.model import ScoringModel, parse_model

PENALTIES = (0.001, 0.01, 0.1, 1.0, 10.0)  # L2 strengths tried by cross-validation
MIN_SHARE = 0.5  # a metric below this share of 100 is dropped from the proposal


@dataclass(frozen=True)
class Split:
    train: np.ndarray  # indices
    held_out: np.ndarray
    cutoff: date  # train: settled on or before it; held out: lead day after it


@dataclass(frozen=True)
class Fit:
    weights: dict[str, float]  # metric key -> share of 100
    penalty: float
    cv_auc: float | None  # mean AUC over the validation folds


def time_split(occurred: Sequence[date], lead_days: int, held_out: float = 0.3) -> Split | None:
    """The last `held_out` share of outcomes (by date) held out; training keeps only outcomes
    settled before the first held-out lead day. None when either side would be empty."""
    order = np.argsort(np.array(occurred, dtype="datetime64[D]"), kind="stable")
    if len(order) < 4:
        return None
    first_held = occurred[order[int(len(order) * (1 - held_out))]]
    cutoff = first_held - timedelta(days=lead_days + 1)
    train = np.array([i for i in order if occurred[i] <= cutoff], dtype=int)
    test = np.array([i for i in order if occurred[i] >= first_held], dtype=int)
    if not len(train) or not len(test):
        return None
    return Split(train, test, cutoff)


def features(scores: np.ndarray, fill: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Metric scores scaled to 0-1, a missing one replaced by `fill` (default: its mean,
    0.5 for a metric never seen). Returns (features, fill)."""
    x = scores / 100.0
    if fill is None:
        with np.errstate(invalid="ignore"):
            seen = ~np.isnan(x)
            fill = np.where(
                seen.any(axis=0), np.nansum(x, axis=0) / np.maximum(seen.sum(0), 1), 0.5
            )
    return np.where(np.isnan(x), fill, x), fill


def fit_logistic(
    x: np.ndarray, y: np.ndarray, penalty: float, anchor: np.ndarray | None = None
) -> np.ndarray:
    """Weights w >= 0 (and an intercept) of P(churn) = sigmoid(b - x @ w), minimising the mean
    log loss plus penalty * |w - anchor|^2 (L-BFGS-B with bounds). The anchor is the current
    model's weights on the same scale: a strong penalty keeps the current model, and only
    what the outcomes show moves the proposal away from it."""
    n, m = x.shape
    anchor = np.zeros(m) if anchor is None else anchor

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[:m], theta[m]
        z = b - x @ w
        p = 1 / (1 + np.exp(-np.clip(z, -500, 500)))  # no overflow for far-off starting points
        ll = np.logaddexp(0, z) - y * z  # -log likelihood per outcome
        r = p - y
        d = w - anchor
        grad_w = -(x.T @ r) / n + 2 * penalty * d
        return float(ll.mean() + penalty * d @ d), np.append(grad_w, r.mean())

    start = np.append(np.maximum(anchor, 0.01), 0.0)
    bounds = [(0.0, None)] * m + [(None, None)]
    result = minimize(loss, start, jac=True, method="L-BFGS-B", bounds=bounds)
    return result.x[:m]


def anchored(x: np.ndarray, y: np.ndarray, shares: np.ndarray) -> np.ndarray:
    """The current model's shares on the logistic scale of these outcomes: shares * k, with k
    the fitted slope of churn on the current score alone."""
    k = fit_logistic((x @ shares)[:, None], y, 0.0)[0]
    return shares * max(k, 1e-6)


def _auc(y: np.ndarray, health: np.ndarray) -> float | None:
    if len(set(y.tolist())) < 2:
        return None
    return float(roc_auc_score(y, -health))


def cross_validate(
    x: np.ndarray,
    y: np.ndarray,
    occurred: Sequence[date],
    lead_days: np.ndarray | int,
    shares: np.ndarray,
    *,
    folds: int = 4,
) -> tuple[float, float | None]:
    """The penalty with the best mean validation AUC over time-ordered folds, and that AUC
    (no usable fold: the strongest penalty, i.e. the current model). Rows must be in date
    order; each fold trains on outcomes settled before its validation outcomes' first lead
    day."""
    days = np.array(occurred, dtype="datetime64[D]")
    lead = np.timedelta64(int(lead_days), "D")
    best, best_auc = PENALTIES[-1], None  # no evidence: stay with the current model
    splits = list(TimeSeriesSplit(n_splits=folds).split(x)) if len(x) > folds + 1 else []
    for penalty in PENALTIES:
        aucs = []
        for train, valid in splits:
            train = train[days[train] < days[valid].min() - lead]
            if len(set(y[train].tolist())) < 2:
                continue
            xt, fill = features(x[train])
            w = fit_logistic(xt, y[train], penalty, anchored(xt, y[train], shares))
            xv, _ = features(x[valid], fill)
            auc = _auc(y[valid], xv @ w)
            if auc is not None:
                aucs.append(auc)
        if aucs and (best_auc is None or np.mean(aucs) > best_auc):
            best, best_auc = penalty, float(np.mean(aucs))
    return best, best_auc


def fit_weights(
    scores: np.ndarray,
    churned: np.ndarray,
    occurred: Sequence[date],
    metric_keys: Sequence[str],
    *,
    lead_days: int,
    current: Sequence[float],
) -> Fit:
    """Weights for the metrics from outcomes (rows in date order), starting from and
    regularised towards the `current` shares: cross-validated penalty, then one fit on all
    of them. A fit that finds no signal keeps the current shares."""
    shares = np.asarray(current, dtype=float) / max(sum(current), 1e-9)
    penalty, cv_auc = cross_validate(scores, churned, occurred, lead_days, shares)
    x, _ = features(scores)
    w = fit_logistic(x, churned, penalty, anchored(x, churned, shares))
    if w.sum() <= 0:
        w = shares
    shares = 100 * w / w.sum()
    return Fit(dict(zip(metric_keys, shares.round(2).tolist(), strict=True)), penalty, cv_auc)


def proposed_model(model: ScoringModel, weights: dict[str, float], *, version: str) -> ScoringModel:
    """`model` with the fitted shares: each metric's weight is its share, each component's the
    sum of its metrics'; metrics below MIN_SHARE, and components left empty, are dropped."""
    data = model.model_dump(mode="json", exclude_defaults=False)
    data["version"] = version[:32]
    components = {}
    for ckey, comp in data["components"].items():
        metrics = {
            k: m | {"weight": weights[k]}
            for k, m in comp["metrics"].items()
            if weights.get(k, 0.0) >= MIN_SHARE
        }
        if metrics:
            total = round(sum(m["weight"] for m in metrics.values()), 2)
            components[ckey] = comp | {"metrics": metrics, "weight": total}
    if not components:
        raise ValueError("the fit kept no metric: every weight is below the minimum share")
    data["components"] = components
    return parse_model(data, source="the fitted model")
