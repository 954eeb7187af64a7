"""Usage that is sparse or weekly: recency and regularity statistics, baselines of 0, and the
confidence below which no tier is claimed. Hand-computed cases; pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from health.scoring.engine import AccountContext, PriorState, announce, score
from health.scoring.explain import explain
from health.scoring.model import INSUFFICIENT, ModelError, load_model
from health.scoring.stats import LOOKBACK_DAYS, SignalSeries, summarize
from health.settings import DEFAULT_MODEL_PATH, Settings

MODEL = load_model(DEFAULT_MODEL_PATH)
NOW = datetime(2026, 11, 2, tzinfo=UTC)
ACME = AccountContext(name="Acme")


def ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def test_days_since_use_and_weeks_active_by_hand():
    # first seen 100 days ago; used 10.5 days ago (week 1 back); quiet rows since
    s = SignalSeries([(ago(100), 5), (ago(20), 0), (ago(10.5), 3), (ago(2), 0)]).stats_at(NOW)
    assert s.days_since == pytest.approx(2)  # the newest row, a quiet one
    assert s.days_since_active == pytest.approx(10.5)  # the newest row above 0
    assert s.active_week_share == pytest.approx(1 / 12)  # one week of the last twelve
    # a customer of ten days, used in both of its weeks: fully regular, not 2 of 12
    young = SignalSeries([(ago(10), 1), (ago(3), 2)]).stats_at(NOW)
    assert young.active_week_share == 1.0 and young.days_since_active == pytest.approx(3)
    # rows, but never a use in the lookback: a year, not "no data"
    idle = SignalSeries([(ago(d), 0) for d in range(1, 60, 7)]).stats_at(NOW)
    assert idle.days_since_active == LOOKBACK_DAYS and idle.active_week_share == 0.0


def weekly(active_weeks: list[int], *, users: int = 20, seats: int = 40) -> dict:
    """Weekly usage rows over 26 weeks: `users` in the weeks listed (weeks back from now), 0 in
    the others."""
    obs = []
    for w in range(26):
        at = ago(7 * w + 1)
        obs.append(("active_users", at, users if w in active_weeks else 0))
        obs.append(("core_features_used", at, 4 if w in active_weeks else 0))
        obs.append(("key_events", at, 10 * users if w in active_weeks else 0))
    obs.append(("seats", ago(1), seats))
    obs += [("open_tickets", ago(3), 0), ("csm_touch", ago(9), 1), ("payment_days_late", ago(5), 0)]
    return summarize(obs, NOW)


def test_used_yesterday_and_gone_for_three_months_are_far_apart():
    regular = score(weekly([0, 1, 3, 5, 6, 8, 10, 13, 15, 17, 20, 22]), MODEL, account=ACME,
                    prior=PriorState(), now=NOW)  # fmt: skip
    gone = score(weekly([13, 15, 17, 20, 22]), MODEL, account=ACME, prior=PriorState(), now=NOW)
    usage = [next(c for c in r.components if c.key == "product_usage") for r in (regular, gone)]
    since = [next(m for m in u.metrics if m.key == "days_since_use") for u in usage]
    assert [m.value for m in since] == pytest.approx([1, 92])  # last used 1 and 92 days ago
    assert [m.score for m in since] == [100, 0]
    assert usage[1].score == 0 and usage[0].score > 60
    assert regular.total - gone.total > 30 and gone.tier in ("at_risk", "critical")


def test_a_quiet_week_is_not_a_collapse():
    # active in most weeks, not in the last one: a 7-day average would read 0
    quiet = score(weekly([1, 2, 3, 4, 6, 7, 9, 10, 11, 13]), MODEL, account=ACME,
                  prior=PriorState(), now=NOW)  # fmt: skip
    assert quiet.tier in ("healthy", "monitor")


def test_a_baseline_of_zero_still_says_something():
    base = weekly([0, 1, 2])
    nothing = {**base, "active_users": base["active_users"]._replace(avg_30d=0.0, baseline=0.0)}
    grown = {**base, "active_users": base["active_users"]._replace(avg_30d=12.0, baseline=0.0)}
    got = {}
    for name, stats in (("nothing", nothing), ("grown", grown)):
        r = score(stats, MODEL, account=ACME, prior=PriorState(), now=NOW)
        got[name] = next(m for c in r.components for m in c.metrics if m.key == "usage_vs_baseline")
    assert (got["nothing"].value, got["nothing"].score) == (0.0, 0.0)  # nothing then, nothing now
    assert (got["grown"].value, got["grown"].score) == (10.0, 100.0)  # grew from nothing
    assert got["grown"].share > 0 and got["nothing"].share > 0  # neither dropped out


def test_below_the_minimum_confidence_no_tier_is_claimed():
    # support (4 of its 6 metric weights: tickets, sev-1s) and relationship (5 of 6): 20 x 4/6
    # + 15 x 5/6 = 26% of the model, a high score on what there is
    stats = summarize(
        [("open_tickets", ago(2), 0), ("csm_touch", ago(3), 1), ("exec_meeting", ago(20), 1)], NOW
    )
    r = score(stats, MODEL, account=ACME, prior=PriorState(), now=NOW)
    assert r.confidence == pytest.approx(0.258) and r.total >= 80
    assert r.tier == r.announced_tier == INSUFFICIENT  # never Healthy on 26% of the model
    sentence = explain(r, name="Acme", model=MODEL)
    assert sentence.startswith("Acme has too little data for a tier (26% confidence, 50% needed")
    assert "Product usage or Adoption depth" in sentence and "USAGE_CSV" in sentence
    assert "Stripe (STRIPE_API_KEY)" in sentence  # commercial is missing too
    looser = MODEL.with_min_confidence(0.25)
    assert score(stats, looser, account=ACME, prior=PriorState(), now=NOW).tier == "healthy"


def test_insufficient_data_is_announced_at_once_both_ways():
    held = PriorState(tier="healthy", announced_tier="healthy")
    today = NOW.date()
    assert announce(INSUFFICIENT, held, hard_event=False, today=today, hold_days=7) == (
        INSUFFICIENT,
        None,
        True,
    )
    none = PriorState(tier=INSUFFICIENT, announced_tier=INSUFFICIENT)
    assert announce("at_risk", none, hard_event=False, today=today, hold_days=7) == (
        "at_risk",
        None,
        True,
    )


@pytest.mark.parametrize(("raw", "share"), [("0.4", 0.4), ("40", 0.4), ("40%", 0.4), (None, None)])
def test_min_confidence_setting_takes_a_share_or_a_percentage(raw, share, monkeypatch):
    if raw is None:
        monkeypatch.delenv("HEALTHBOT_MIN_CONFIDENCE", raising=False)
    else:
        monkeypatch.setenv("HEALTHBOT_MIN_CONFIDENCE", raw)
    got = Settings(_env_file=None).healthbot_min_confidence
    assert got == (pytest.approx(share) if share is not None else None)
    model = load_model(DEFAULT_MODEL_PATH, min_confidence=got)
    assert model.tiers.min_confidence == pytest.approx(share if share is not None else 0.5)


def test_a_min_confidence_beyond_one_is_a_clear_error():
    with pytest.raises(ModelError, match="HEALTHBOT_MIN_CONFIDENCE: must lie in 0..1"):
        load_model(DEFAULT_MODEL_PATH, min_confidence=1.5)
