"""Does the score predict what happened? Pure computations over outcomes and the score each
account had `lead_days` before its outcome (`Case`s, read by `health.backtest_read`).

"At risk or critical" (the tier people were shown) is the churn flag for precision, recall,
F1 and accuracy; the AUC ranks by the score itself (lower = more likely to churn). Metrics
come from scikit-learn. Too few outcomes, or only one class, gives a `problem` in words and
no number rather than a NaN.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from statistics import median

import numpy as np
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

from health.scoring.model import INSUFFICIENT  # the tier below the confidence floor

FLAGGED = ("at_risk", "critical")
MIN_OUTCOMES = 10  # fewer and no metric is reported
# retention by score range: the table of domain article 003 ("Segment Analysis")
BANDS: tuple[tuple[str, float, float], ...] = (
    ("90-100", 90, 101),
    ("80-89", 80, 90),
    ("70-79", 70, 80),
    ("60-69", 60, 70),
    ("50-59", 50, 60),
    ("<50", 0, 50),
)


@dataclass(frozen=True)
class Case:
    """One renewal outcome and the score as it stood `lead_days` before it."""

    account_id: int
    name: str
    segment: str | None
    owner: str | None
    kind: str  # renewed / churned / expanded
    occurred_on: date
    score_date: date
    total: float
    tier: str  # the tier people were shown then
    model_version: str
    confidence: float = 1.0
    reason: str = ""
    drivers: tuple = ()
    sentiment: float | None = None  # the CSM's newest rating (1-5) as of that day

    @property
    def churned(self) -> bool:
        return self.kind == "churned"

    @property
    def flagged(self) -> bool:
        return self.tier in FLAGGED


@dataclass
class Metrics:
    outcomes: int
    churned: int
    auc: float | None = None
    precision: float | None = None
    recall: float | None = None
    f1: float | None = None
    accuracy: float | None = None
    confusion: dict = field(default_factory=dict)  # tp, fp, tn, fn
    problem: str | None = None  # why metrics are missing, in words

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items()}


def evaluate(cases: Sequence[Case], *, minimum: int = MIN_OUTCOMES) -> Metrics:
    """AUC of the score, and precision, recall, F1 and accuracy of the at-risk flag."""
    y = np.array([c.churned for c in cases], dtype=int)
    m = Metrics(outcomes=len(cases), churned=int(y.sum()))
    problem = sample_problem(m.outcomes, m.churned, minimum=minimum)
    if problem:
        m.problem = problem
        return m
    flag = np.array([c.flagged for c in cases], dtype=int)
    risk = -np.array([c.total for c in cases])
    tn, fp, fn, tp = confusion_matrix(y, flag, labels=[0, 1]).ravel()
    m.confusion = {"tp": int(tp), "fp": int(fp), "tn": int(tn), "fn": int(fn)}
    m.auc = _r(roc_auc_score(y, risk))
    m.precision = _r(precision_score(y, flag, zero_division=np.nan))
    m.recall = _r(recall_score(y, flag, zero_division=np.nan))
    m.f1 = _r(f1_score(y, flag, zero_division=np.nan))
    m.accuracy = _r(accuracy_score(y, flag))
    return m


def sample_problem(outcomes: int, churned: int, *, minimum: int = MIN_OUTCOMES) -> str | None:
    if outcomes < minimum:
        return (
            f"only {outcomes} outcome{'s' if outcomes != 1 else ''} with a score at lead time "
            f"(at least {minimum} are needed)"
        )
    if churned == 0:
        return f"none of the {outcomes} outcomes is a churn: nothing to predict"
    if churned == outcomes:
        return f"all {outcomes} outcomes are churns: nothing to tell apart"
    return None


def _r(value: float, digits: int = 3) -> float | None:
    value = float(value)
    return None if math.isnan(value) else round(value, digits)


def retention_by_band(cases: Sequence[Case]) -> list[dict]:
    """Per band of article 003: outcomes, how many were kept (renewed or expanded), the rate."""
    out = []
    for name, lo, hi in BANDS:
        inside = [c for c in cases if lo <= c.total < hi]
        kept = sum(1 for c in inside if not c.churned)
        rate = _r(kept / len(inside)) if inside else None
        out.append({"band": name, "outcomes": len(inside), "retained": kept, "retention": rate})
    return out


def grouped(
    cases: Sequence[Case], key: Callable[[Case], str | None], *, minimum: int = MIN_OUTCOMES
) -> dict[str, dict]:
    """`evaluate` per group (segment, model version), with retention by band."""
    groups: dict[str, list[Case]] = {}
    for c in cases:
        groups.setdefault(key(c) or "unknown", []).append(c)
    return {
        name: evaluate(members, minimum=minimum).as_dict() | {"bands": retention_by_band(members)}
        for name, members in sorted(groups.items())
    }


def first_warnings(cases: Sequence[Case], history: dict[int, list[tuple[date, str]]]) -> list[dict]:
    """For each churn: the day from which the account stood flagged (at risk or critical)
    without going back to monitor or healthy until its last score before the churn, and how
    many days' notice that gave; None when it was not flagged at the end."""
    out = []
    for c in cases:
        if not c.churned:
            continue
        points = sorted(p for p in history.get(c.account_id, []) if p[0] <= c.occurred_on)
        since = None
        for day, tier in reversed(points):
            if tier not in FLAGGED:
                break
            since = day
        out.append(
            {
                "account_id": c.account_id,
                "name": c.name,
                "churned_on": c.occurred_on.isoformat(),
                "warned_on": since.isoformat() if since else None,
                "days_notice": (c.occurred_on - since).days if since else None,
            }
        )
    return out


def warning_summary(warnings: Sequence[dict]) -> dict:
    notice = [w["days_notice"] for w in warnings if w["days_notice"] is not None]
    n = len(warnings)
    return {
        "churns": n,
        "warned": len(notice),
        "never_warned": n - len(notice),
        "median_days_notice": median(notice) if notice else None,
        "warned_90_days_ahead": sum(1 for d in notice if d >= 90),
        "warned_30_days_ahead": sum(1 for d in notice if d >= 30),
    }


def false_negatives(cases: Sequence[Case]) -> list[dict]:
    """Accounts shown Healthy at lead time that churned, with what the score said then."""
    return [
        {
            "account_id": c.account_id,
            "name": c.name,
            "segment": c.segment,
            "churned_on": c.occurred_on.isoformat(),
            "score_date": c.score_date.isoformat(),
            "total": c.total,
            "drivers": list(c.drivers),
            "reason": c.reason,
        }
        for c in sorted(cases, key=lambda c: -c.total)
        if c.churned and c.tier == "healthy"
    ]


def curves(cases: Sequence[Case]) -> dict:
    """ROC curve points and a calibration table (risk = (100 - score) / 100) for the report."""
    y = np.array([c.churned for c in cases], dtype=int)
    if sample_problem(len(y), int(y.sum()), minimum=2):
        return {"roc": [], "calibration": []}
    risk = np.array([(100 - c.total) / 100 for c in cases])
    fpr, tpr, _ = roc_curve(y, risk)
    observed, predicted = calibration_curve(y, risk, n_bins=10, strategy="uniform")
    return {
        "roc": [[_r(a), _r(b)] for a, b in zip(fpr, tpr, strict=True)],
        "calibration": [[_r(p), _r(o)] for p, o in zip(predicted, observed, strict=True)],
    }


def sentiment_by_csm(cases: Sequence[Case], *, minimum: int = 4) -> list[dict]:
    """Per CSM (account owner): how their newest sentiment rating before each outcome's lead
    day anticipated it: the mean rating of the accounts that churned and of those kept, and
    the AUC of the rating (low = churn) where there are both."""
    by_owner: dict[str, list[Case]] = {}
    for c in cases:
        if c.sentiment is not None:
            by_owner.setdefault(c.owner or "unassigned", []).append(c)
    out = []
    for owner, rated in sorted(by_owner.items()):
        y = [int(c.churned) for c in rated]
        churned = [c.sentiment for c in rated if c.churned]
        kept = [c.sentiment for c in rated if not c.churned]
        problem = sample_problem(len(rated), sum(y), minimum=minimum)
        auc = None if problem else _r(roc_auc_score(y, [-(c.sentiment or 0) for c in rated]))
        out.append(
            {
                "csm": owner,
                "rated_outcomes": len(rated),
                "churned": sum(y),
                "mean_rating_churned": _r(sum(churned) / len(churned), 2) if churned else None,
                "mean_rating_kept": _r(sum(kept) / len(kept), 2) if kept else None,
                "auc": auc,
                "problem": problem,
            }
        )
    return out


def report(cases: Sequence[Case], history: dict[int, list[tuple[date, str]]], **meta) -> dict:
    """The whole backtest as one JSON-ready object. Accounts whose tier was "insufficient
    data" are counted apart and left out of every metric."""
    scored = [c for c in cases if c.tier != INSUFFICIENT]
    unsure = [c for c in cases if c.tier == INSUFFICIENT]
    overall = evaluate(scored)
    versions = Counter(c.model_version for c in scored)
    warnings = first_warnings(scored, history)
    return {
        **meta,
        **overall.as_dict(),
        "model_version": versions.most_common(1)[0][0] if versions else None,
        "bands": retention_by_band(scored),
        "segments": grouped(scored, lambda c: c.segment),
        "model_versions": grouped(scored, lambda c: c.model_version),
        "first_warning": warning_summary(warnings),
        "warnings": warnings,
        "false_negatives": false_negatives(scored),
        "insufficient_data": {
            "outcomes": len(unsure),
            "churned": sum(1 for c in unsure if c.churned),
        },
        "csm_sentiment": sentiment_by_csm(scored),
        "curves": curves(scored),
    }
