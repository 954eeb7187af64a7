"""The scoring engine: invariants (hypothesis) and worked examples."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from health.scoring.engine import (
    AccountContext,
    PriorState,
    announce,
    score,
    score_many,
    tier_bands,
    tier_for,
)
from health.scoring.explain import explain
from health.scoring.model import ALL_TIERS, INSUFFICIENT, TIERS, load_model, parse_model
from health.scoring.stats import LOOKBACK_DAYS, SignalStats
from health.scoring.vector import interpolate
from health.settings import DEFAULT_MODEL_PATH

MODEL = load_model(DEFAULT_MODEL_PATH)
NOW = datetime(2026, 11, 2, tzinfo=UTC)
ACME = AccountContext(name="Acme")
NEW = PriorState()


def stat(value: float, *, days_ago: float = 0.5, baseline: float | None = None) -> SignalStats:
    return SignalStats(
        latest=value,
        latest_at=NOW - timedelta(days=days_ago),
        avg_7d=value,
        avg_30d=value,
        avg_90d=value,
        sum_30d=value,
        sum_90d=value,
        baseline=baseline,
        days_since=days_ago,
        days_since_active=days_ago if value > 0 else LOOKBACK_DAYS,
        active_week_share=1.0 if value > 0 else 0.0,
    )


HEALTHY = {
    "active_users": stat(90, baseline=100),
    "seats": stat(100),
    "core_features_used": stat(6),
    "key_events": stat(500, baseline=480),
    "open_tickets": stat(0),
    "csat": stat(95),
    "nps": stat(9),
    "csm_touch": stat(1, days_ago=5),
    "exec_meeting": stat(2, days_ago=20),
    "csm_sentiment": stat(4),
    "payment_days_late": stat(0),
}

finite = st.floats(min_value=0, max_value=1e4, allow_nan=False, allow_infinity=False)
signals = st.sampled_from(sorted(MODEL.used_signals()))
stats_maps = st.dictionaries(
    signals,
    st.builds(
        lambda v, age, base: stat(v, days_ago=age, baseline=base),
        finite,
        st.floats(min_value=0.01, max_value=300),
        st.one_of(st.none(), finite),
    ),
    min_size=1,
)


@settings(max_examples=300, deadline=None)
@given(stats_maps)
def test_total_stays_within_0_100_and_confidence_within_0_1(stats):
    result = score(stats, MODEL, account=ACME, prior=NEW, now=NOW)
    assume(result is not None)  # None only when no metric is computable
    assert 0 <= result.total <= 100
    assert 0 < result.confidence <= 1
    assert result.tier in ALL_TIERS
    # a tier is claimed exactly when there is enough data for one
    assert (result.tier == INSUFFICIENT) == (result.confidence < MODEL.tiers.min_confidence)


@settings(max_examples=300, deadline=None)
@given(stats_maps, signals, st.floats(min_value=0.01, max_value=1e3))
def test_more_of_a_good_signal_never_lowers_the_score(stats, signal, bump):
    direction = MODEL.signals[signal].direction
    if direction == "none" or signal not in stats:
        return
    before = score(stats, MODEL, account=ACME, prior=NEW, now=NOW)
    assume(before is not None)
    s = stats[signal]
    sign = 1 if direction == "up" else -1

    def moved(v: float | None) -> float | None:
        return None if v is None else max(0.0, v + sign * bump)

    better = s._replace(
        latest=moved(s.latest),
        avg_7d=moved(s.avg_7d),
        avg_30d=moved(s.avg_30d),
        avg_90d=moved(s.avg_90d),
        sum_30d=moved(s.sum_30d),
        sum_90d=moved(s.sum_90d),
    )
    after = score({**stats, signal: better}, MODEL, account=ACME, prior=NEW, now=NOW)
    assert after.total >= before.total - 0.1  # rounding to one decimal


@settings(max_examples=200, deadline=None)
@given(stats_maps)
def test_shares_renormalise_over_present_metrics(stats):
    result = score(stats, MODEL, account=ACME, prior=NEW, now=NOW)
    assume(result is not None)
    shares = [m.share for c in result.components for m in c.metrics]
    assert sum(shares) == pytest.approx(1.0)
    assert all(m.share == 0 for c in result.components for m in c.metrics if m.value is None)


def test_missing_signals_are_renormalised_not_zero():
    full = score(HEALTHY, MODEL, account=ACME, prior=NEW, now=NOW)
    usage_only = {k: HEALTHY[k] for k in ("active_users", "seats")}
    partial = score(usage_only, MODEL, account=ACME, prior=NEW, now=NOW)
    assert partial.total >= 90  # a missing component does not count as 0
    assert partial.confidence < 0.35 < full.confidence
    assert full.confidence == 1.0
    # ... but 30% of the model is no ground for a claim: no tier, and the sentence says so
    assert partial.tier == partial.announced_tier == INSUFFICIENT and full.tier == "healthy"


def test_stale_component_lowers_confidence_but_keeps_its_score():
    stale = {
        **HEALTHY,
        "active_users": stat(90, days_ago=12, baseline=100),
        "seats": stat(100, days_ago=12),
    }
    result = score(stale, MODEL, account=ACME, prior=NEW, now=NOW)
    usage = next(c for c in result.components if c.key == "product_usage")
    assert usage.stale and usage.age_days == pytest.approx(12)  # stale after 10 days
    assert result.confidence == pytest.approx(1 - 0.3 * 0.5)


def test_csm_sentiment_is_capped():
    only = {"csm_sentiment": stat(5), "active_users": stat(10, baseline=100), "seats": stat(100)}
    result = score(only, MODEL, account=ACME, prior=NEW, now=NOW)
    sentiment = next(m for c in result.components for m in c.metrics if m.key == "csm_sentiment")
    assert sentiment.share == pytest.approx(0.05)
    worst = score({**only, "csm_sentiment": stat(1)}, MODEL, account=ACME, prior=NEW, now=NOW)
    assert 0 < result.total - worst.total <= 5 + 0.1  # it informs the score, never overrides it


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(TIERS), min_size=1, max_size=60), st.integers(0, 10))
def test_a_tier_change_is_announced_only_after_holding(raws, hold):
    prior, day, announced_on = PriorState(), date(2026, 1, 1), []
    for i, raw in enumerate(raws):
        today = day + timedelta(days=i)
        tier, pending, changed = announce(raw, prior, hard_event=False, today=today, hold_days=hold)
        if changed:
            announced_on.append(i)
            assert tier == raw
            held = raws[max(0, i - hold) : i + 1]
            assert len(held) == hold + 1 and set(held) == {raw}
        prior = PriorState(tier=raw, announced_tier=tier, pending_since=pending)


def test_hard_event_announces_a_worse_tier_at_once():
    prior = PriorState(tier="healthy", announced_tier="healthy")
    assert announce("at_risk", prior, hard_event=True, today=NOW.date(), hold_days=7) == (
        "at_risk",
        None,
        True,
    )
    assert announce("at_risk", prior, hard_event=False, today=NOW.date(), hold_days=7) == (
        "healthy",
        NOW.date(),
        False,
    )
    stats = {
        **HEALTHY,
        "champion_left": stat(1, days_ago=2),
        "active_users": stat(30, baseline=100),
    }
    result = score(stats, MODEL, account=ACME, prior=prior, now=NOW)
    assert result.hard_events == ("champion_left",)
    assert result.tier_announced and result.announced_tier == result.tier != "healthy"


def test_bands_follow_segment_and_lifecycle():
    today = NOW.date()
    ent = AccountContext("E", segment="enterprise")
    assert tier_bands(MODEL, ent, today)[0].healthy == 75
    onboarding = AccountContext("O", customer_since=today - timedelta(days=10))
    bands, stages = tier_bands(MODEL, onboarding, today)
    assert stages == ("onboarding",) and bands.healthy == 75
    renewing = AccountContext("R", segment="smb", renewal_date=today + timedelta(days=30))
    bands, stages = tier_bands(MODEL, renewing, today)
    assert stages == ("renewal_window",) and bands.monitor == 70
    assert tier_for(72, bands) == "monitor" and tier_for(72, MODEL.tiers.bands) == "monitor"
    assert tier_for(39.9, MODEL.tiers.bands) == "critical"


def test_interpolation_is_piecewise_linear_and_flat_beyond_the_ends():
    pts = ((0.4, 0.0), (0.6, 50.0), (0.8, 100.0))
    got = interpolate(pts, [0.1, 0.4, 0.5, 0.7, 0.8, 3, float("nan")])
    assert list(got[:6]) == pytest.approx([0, 0, 25, 75, 100, 100])
    assert got[6] != got[6]  # no value, no score


def test_trend_and_drivers_explain_a_decline():
    prior = PriorState(
        tier="healthy",
        announced_tier="healthy",
        total_30d_ago=95,
        metrics_30d_ago={"usage_vs_baseline": 0.95, "core_features": 6},
    )
    falling = {**HEALTHY, "active_users": stat(45, baseline=100), "core_features_used": stat(2)}
    result = score(falling, MODEL, account=ACME, prior=prior, now=NOW)
    assert result.trend == "down" and result.trend_30d < -5
    # core features 6 -> 2 (100 -> 25) at 20 x 2/3 of the weight: -10 points; usage vs
    # baseline 95% -> 45% (100 -> 12.5) at 30 x 2/7: -7.5 points
    assert [d.metric for d in result.drivers[:2]] == ["core_features", "usage_vs_baseline"]
    assert result.drivers[0].impact == pytest.approx(-10.0)
    assert result.drivers[1].impact == pytest.approx(-30 * 2 / 7 * 87.5 / 100)
    assert result.drivers[1].from_value == 0.95 and result.drivers[1].to_value == 0.45
    sentence = explain(result, name="Acme", model=MODEL)
    assert sentence.startswith("Acme is ")
    assert "active users vs baseline fell from 95% to 45%" in sentence
    assert f"down {abs(round(result.trend_30d))} points in 30 days" in sentence


def test_no_data_at_all_gives_no_score():
    assert score({}, MODEL, account=ACME, prior=NEW, now=NOW) is None


def test_each_model_scores_with_its_own_weights_and_bands():
    data = MODEL.model_dump()
    data["components"]["product_usage"]["weight"] = 90
    data["tiers"]["lifecycle"]["onboarding"]["adjust"] = -20
    other = parse_model(data)
    onboarding = AccountContext("O", customer_since=NOW.date() - timedelta(days=10))
    stats = {**HEALTHY, "active_users": stat(30, baseline=100)}
    for _ in range(2):  # the second round reads what the first derived and kept
        a = score(stats, MODEL, account=onboarding, prior=NEW, now=NOW)
        b = score(stats, other, account=onboarding, prior=NEW, now=NOW)
        assert b.total < a.total and b.bands.healthy == a.bands.healthy - 15 == 60
        assert a == score(stats, MODEL, account=onboarding, prior=NEW, now=NOW)


priors = st.builds(
    lambda total, moved: PriorState(
        tier="monitor",
        announced_tier="monitor",
        total=total,
        total_30d_ago=total,
        metrics_30d_ago=moved,
    ),
    st.floats(min_value=0, max_value=100),
    st.dictionaries(st.sampled_from(sorted(MODEL.components["product_usage"].metrics)), finite),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.one_of(st.just({}), stats_maps), priors), min_size=1, max_size=8))
def test_a_batch_scores_each_account_as_scoring_it_alone_does(accounts):
    together = score_many(
        [s for s, _ in accounts],
        MODEL,
        accounts=[AccountContext(name=f"A{i}") for i in range(len(accounts))],
        priors=[p for _, p in accounts],
        now=NOW,
    )
    for i, ((stats, prior), got) in enumerate(zip(accounts, together, strict=True)):
        alone = score(stats, MODEL, account=AccountContext(name=f"A{i}"), prior=prior, now=NOW)
        assert got == alone
        if not stats:
            assert got is None  # no statistics, no score


def test_huge_metric_values_are_stored_as_they_are():
    stats = {**HEALTHY, "core_features_used": stat(1e305)}
    result = score(stats, MODEL, account=ACME, prior=NEW, now=NOW)
    stored = result.breakdown["adoption_depth"]["metrics"]["core_features"]
    assert stored == [1e305, 100.0]


def test_an_empty_batch_scores_nothing():
    assert score_many([], MODEL, accounts=[], priors=[], now=NOW) == []


def test_the_sentence_names_the_tier_people_are_shown_during_a_hold():
    result = score(HEALTHY, MODEL, account=ACME, prior=NEW, now=NOW)
    held = result._replace(tier="at_risk", announced_tier="healthy")
    sentence = explain(held, name="Acme", model=MODEL)
    assert sentence.startswith("Acme is Healthy at ") and ", trending At risk" in sentence
    settled = result._replace(tier="at_risk", announced_tier="at_risk")
    assert explain(settled, name="Acme", model=MODEL).startswith("Acme is At risk at ")
    assert "trending" not in explain(settled, name="Acme", model=MODEL)
