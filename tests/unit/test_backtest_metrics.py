"""Backtest metrics against cases worked out by hand."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from health.backtest import (
    Case,
    evaluate,
    first_warnings,
    report,
    retention_by_band,
    sentiment_by_csm,
    warning_summary,
)
from health.scoring.engine import tier_for
from health.scoring.model import Bands

BANDS = Bands(healthy=80, monitor=60, at_risk=40)
DAY = date(2026, 6, 30)


def case(i: int, total: float, kind: str, **kw) -> Case:
    return Case(
        account_id=i,
        name=f"A{i}",
        segment=kw.pop("segment", "smb"),
        owner=kw.pop("owner", "ann@x.test"),
        kind=kind,
        occurred_on=DAY,
        score_date=DAY - timedelta(days=90),
        total=total,
        tier=kw.pop("tier", tier_for(total, BANDS)),
        model_version=kw.pop("model_version", "v1"),
        **kw,
    )


CHURNED = [(20, "churned"), (45, "churned"), (85, "churned")]
KEPT = [(30, "renewed"), (65, "renewed"), (70, "expanded"), (75, "renewed"), (82, "renewed")]
KEPT += [(90, "expanded"), (95, "renewed")]
CASES = [case(i, t, k) for i, (t, k) in enumerate(CHURNED + KEPT)]


def test_metrics_match_the_hand_computed_ones():
    m = evaluate(CASES)
    # flagged (at risk or critical): 20, 45 churned (TP), 30 renewed (FP); 85 churned (FN)
    assert m.confusion == {"tp": 2, "fp": 1, "tn": 6, "fn": 1}
    assert m.precision == pytest.approx(0.667, abs=1e-3)
    assert m.recall == pytest.approx(0.667, abs=1e-3)
    assert m.f1 == pytest.approx(0.667, abs=1e-3)
    assert m.accuracy == 0.8
    # churned ranked below kept: 20 -> 7 of 7 pairs, 45 -> 6, 85 -> 2: 15 of 21
    assert m.auc == pytest.approx(15 / 21, abs=1e-3)
    assert m.outcomes == 10 and m.churned == 3 and m.problem is None


def test_retention_by_band_is_the_article_table():
    bands = {b["band"]: (b["outcomes"], b["retention"]) for b in retention_by_band(CASES)}
    assert bands == {
        "90-100": (2, 1.0),
        "80-89": (2, 0.5),
        "70-79": (2, 1.0),
        "60-69": (1, 1.0),
        "50-59": (0, None),
        "<50": (3, 0.333),
    }


@pytest.mark.parametrize(
    ("cases", "words"),
    [
        (CASES[:4], "only 4 outcomes with a score at lead time (at least 10 are needed)"),
        ([case(i, 50 + i, "renewed") for i in range(12)], "none of the 12 outcomes is a churn"),
        ([case(i, 50 + i, "churned") for i in range(12)], "all 12 outcomes are churns"),
    ],
)
def test_too_few_outcomes_or_one_class_is_said_not_a_nan(cases, words):
    m = evaluate(cases)
    assert m.problem.startswith(words)
    assert (m.auc, m.precision, m.recall, m.f1, m.accuracy) == (None,) * 5


def test_nothing_flagged_gives_no_precision_rather_than_nan():
    cases = [case(i, 85 + i, "churned" if i < 3 else "renewed") for i in range(10)]
    m = evaluate(cases)
    assert m.precision is None and m.recall == 0.0 and m.auc is not None


def test_first_warning_is_the_start_of_the_flag_that_stood_until_the_churn():
    churn = CASES[0]
    history = {
        churn.account_id: [
            (DAY - timedelta(days=200), "at_risk"),  # recovered afterwards: not this warning
            (DAY - timedelta(days=150), "monitor"),
            (DAY - timedelta(days=100), "at_risk"),
            (DAY - timedelta(days=50), "critical"),
            (DAY + timedelta(days=5), "healthy"),  # after the churn: not read
        ],
        CASES[1].account_id: [(DAY - timedelta(days=10), "monitor")],
    }
    warnings = first_warnings(CASES, history)
    assert [w["days_notice"] for w in warnings] == [100, None, None]
    assert warning_summary(warnings) == {
        "churns": 3,
        "warned": 1,
        "never_warned": 2,
        "median_days_notice": 100,
        "warned_90_days_ahead": 1,
        "warned_30_days_ahead": 1,
    }


def test_report_lists_false_negatives_and_keeps_insufficient_data_apart():
    unsure = [case(100 + i, 90, "churned", tier="insufficient") for i in range(2)]
    out = report(CASES + unsure, {}, lead_days=90)
    assert out["outcomes"] == 10 and out["churned"] == 3  # the unsure ones are not counted
    assert out["insufficient_data"] == {"outcomes": 2, "churned": 2}
    assert [fn["total"] for fn in out["false_negatives"]] == [85]
    assert out["model_version"] == "v1" and set(out["segments"]) == {"smb"}
    assert out["curves"]["roc"][0] == [0.0, 0.0] and out["curves"]["roc"][-1] == [1.0, 1.0]


def test_sentiment_by_csm_scores_how_ratings_anticipated_outcomes():
    good = [
        case(i, 50, k, owner="ann", sentiment=s)
        for i, (k, s) in enumerate(
            [("churned", 1), ("churned", 2), ("renewed", 4), ("renewed", 5), ("renewed", 2)]
        )
    ]
    poor = [
        case(10 + i, 50, k, owner="bob", sentiment=s)
        for i, (k, s) in enumerate([("churned", 5), ("churned", 4), ("renewed", 2), ("renewed", 1)])
    ]
    rows = {r["csm"]: r for r in sentiment_by_csm(good + poor + [case(20, 50, "churned")])}
    assert set(rows) == {"ann", "bob"}  # an outcome without a rating counts for no one
    # ann: churned rated 1, 2 vs kept 4, 5, 2: pairs (1<4,1<5,1<2, 2<4,2<5, 2=2 half) = 5.5/6
    assert rows["ann"]["auc"] == pytest.approx(5.5 / 6, abs=1e-3)
    assert rows["ann"]["mean_rating_churned"] == 1.5 and rows["ann"]["mean_rating_kept"] == 3.67
    assert rows["bob"]["auc"] == 0.0
