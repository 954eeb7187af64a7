"""Every trigger and combinator, as pure functions of facts and an injected `now`."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from health.scoring.stats import SignalStats
from playbooks.engine import test as evaluate_condition
from playbooks.facts import AccountFacts, ChangeFacts
from playbooks.spec import Condition
from playbooks.triggers import TRIGGERS

NOW = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
TODAY = NOW.date()


def facts(**kw) -> AccountFacts:
    return AccountFacts(account_id=1, name="Acme", **kw)


def stat(latest=None, days_since=0.0, **kw) -> SignalStats:
    return SignalStats(
        latest=latest, latest_at=NOW - timedelta(days=days_since), days_since=days_since, **kw
    )


def change(from_tier, to_tier, delta=-5.0) -> ChangeFacts:
    return ChangeFacts(1, NOW, from_tier, to_tier, delta)


def run(name: str, value, f: AccountFacts) -> tuple[bool, bool]:
    fires, holds, _why = evaluate_condition(Condition(name, TRIGGERS[name].parse(value)), f, NOW)
    return fires, holds


def test_tier_entered_fires_on_the_change_and_holds_while_in_the_tier():
    assert run(
        "tier_entered", "critical", facts(tier="critical", change=change("at_risk", "critical"))
    ) == (True, True)
    # still critical, but this change did not move it there: holds, does not fire again
    assert run(
        "tier_entered", "critical", facts(tier="critical", change=change("critical", "critical"))
    ) == (False, True)
    assert run("tier_entered", "critical", facts(tier="monitor")) == (False, False)
    # a first score in the tier counts as entering it
    assert run(
        "tier_entered",
        ["critical", "at_risk"],
        facts(tier="at_risk", change=change(None, "at_risk")),
    )[0]


def test_tier_left_and_tier_is():
    assert run(
        "tier_left", "critical", facts(tier="at_risk", change=change("critical", "at_risk"))
    ) == (True, True)
    assert run(
        "tier_left", "critical", facts(tier="critical", change=change("at_risk", "critical"))
    ) == (False, False)
    assert run("tier_is", "healthy", facts(tier="healthy")) == (True, True)
    assert run("tier_is", "healthy", facts(tier="monitor")) == (False, False)


def test_score_dropped_compares_with_the_score_that_long_ago():
    assert run(
        "score_dropped", {"points": 10, "within": "30d"}, facts(total=60, total_ago={30: 71})
    ) == (True, True)
    assert run(
        "score_dropped", {"points": 10, "within": "30d"}, facts(total=62, total_ago={30: 71})
    ) == (False, False)
    assert run("score_dropped", {"points": 10}, facts(total=60)) == (False, False)  # no history
    assert TRIGGERS["score_dropped"].needs(
        TRIGGERS["score_dropped"].parse({"points": 5, "within": "2w"})
    ).score_windows == {14}


def test_score_below_and_at_least():
    assert run("score_below", 40, facts(total=39.9))[0]
    assert not run("score_below", 40, facts(total=40))[0]
    assert not run("score_below", 40, facts())[0]  # no score: no claim
    assert run("score_at_least", 85, facts(total=85))[0]
    assert not run("score_at_least", 85, facts(total=84.9))[0]


def test_usage_below_baseline_needs_a_baseline():
    low = {"active_users": stat(5, avg_7d=5.0, baseline=10.0)}
    assert run("usage_below_baseline", {"percent": 60}, facts(signals=low))[0]
    assert not run("usage_below_baseline", {"percent": 40}, facts(signals=low))[0]
    no_base = {"active_users": stat(5, avg_7d=5.0, baseline=0.0)}
    assert not run("usage_below_baseline", {"percent": 60}, facts(signals=no_base))[0]
    monthly = {"active_users": stat(5, avg_7d=9.0, avg_30d=4.0, baseline=10.0)}
    assert run("usage_below_baseline", {"percent": 60, "window": "30d"}, facts(signals=monthly))[0]
    assert not run("usage_below_baseline", {"percent": 60}, facts(signals=monthly))[0]


def test_no_usage_counts_days_since_the_last_active_day():
    usage = {"active_users": stat(0.0)}
    assert run(
        "no_usage", {"days": 14}, facts(signals=usage, last_active_days={"active_users": 20.0})
    )[0]
    assert not run(
        "no_usage", {"days": 14}, facts(signals=usage, last_active_days={"active_users": 3.0})
    )[0]
    # usage rows, never a positive one: dormant since the start
    assert run(
        "no_usage", {"days": 14}, facts(signals=usage, last_active_days={"active_users": None})
    )[0]
    # no usage data at all is missing data, not dormancy
    assert not run("no_usage", {"days": 14}, facts())[0]


def test_adoption_falling_week_after_week():
    falling = {"core_features_used": (2.0, 3.0, 4.0, 5.0)}  # newest first
    assert run("adoption_falling", {"weeks": 3}, facts(weekly=falling))[0]
    wobble = {"core_features_used": (2.0, 3.0, 3.0, 5.0)}
    assert not run("adoption_falling", {"weeks": 3}, facts(weekly=wobble))[0]
    gap = {"core_features_used": (2.0, None, 4.0, 5.0)}
    assert not run("adoption_falling", {"weeks": 3}, facts(weekly=gap))[0]
    assert run("adoption_falling", {"weeks": 1}, facts(weekly=wobble))[0]


@pytest.mark.parametrize(
    ("name", "value", "signal"),
    [
        ("champion_left", {"within": "30d"}, "champion_left"),
        ("champion_left", True, "champion_left"),
        ("payment_failed", {"within": "30d"}, "payment_failed"),
        ("ticket_opened", {"severity": ["sev1", "sev2"], "within": "30d"}, "sev2_ticket"),
        ("ticket_opened", {"severity": "sev1", "within": "30d"}, "sev1_ticket"),
    ],
)
def test_recent_events(name, value, signal):
    assert run(name, value, facts(signals={signal: stat(1.0, days_since=10)}))[0]
    assert not run(name, value, facts(signals={signal: stat(1.0, days_since=40)}))[0]
    assert not run(name, value, facts(signals={"other": stat(1.0)}))[0]


def test_sev2_does_not_match_a_sev1_only_trigger():
    assert not run(
        "ticket_opened", {"severity": "sev1"}, facts(signals={"sev2_ticket": stat(1.0)})
    )[0]


def test_snapshots_age_with_time():
    # a ticket 8 days old when last seen 3 days ago is 11 days old now
    aging = {"oldest_open_ticket_days": stat(8.0, days_since=3)}
    assert run("ticket_open_longer", {"days": 10}, facts(signals=aging))[0]
    assert not run("ticket_open_longer", {"days": 12}, facts(signals=aging))[0]
    late = {"payment_days_late": stat(25.0, days_since=6)}
    assert run("invoice_late", {"days": 30}, facts(signals=late))[0]
    assert not run(
        "invoice_late", {"days": 30}, facts(signals={"payment_days_late": stat(0.0, days_since=60)})
    )[0]


def test_nps_and_csat_falling_against_the_baseline():
    nps = {"nps": stat(5, avg_30d=5.0, baseline=8.0)}
    assert run("nps_falling", {"points": 2}, facts(signals=nps))[0]
    assert not run("nps_falling", {"points": 4}, facts(signals=nps))[0]
    csat = {"csat": stat(50, avg_30d=70.0, baseline=90.0)}
    assert run("csat_falling", {"points": 15}, facts(signals=csat))[0]
    assert not run(
        "csat_falling",
        {"points": 15},
        facts(signals={"csat": stat(90, avg_30d=85.0, baseline=90.0)}),
    )[0]


def test_renewal_within():
    assert run("renewal_within", {"days": 60}, facts(renewal_date=TODAY + timedelta(days=60)))[0]
    assert not run("renewal_within", {"days": 60}, facts(renewal_date=TODAY + timedelta(days=61)))[
        0
    ]
    assert not run("renewal_within", {"days": 60}, facts(renewal_date=TODAY - timedelta(days=1)))[0]
    assert not run("renewal_within", {"days": 60}, facts())[0]


def test_sentiment_triggers():
    assert run("sentiment_at_most", 2, facts(sentiment=2))[0]
    assert not run("sentiment_at_most", 2, facts(sentiment=3))[0]
    assert not run("sentiment_at_most", 2, facts())[0]
    assert run("sentiment_falling", True, facts(sentiment=3, previous_sentiment=4))[0]
    assert run("sentiment_falling", True, facts(sentiment=4, sentiment_direction="declining"))[0]
    assert not run("sentiment_falling", True, facts(sentiment=4, previous_sentiment=3))[0]


def test_segment_and_lifecycle_filters():
    assert run("segment", ["enterprise"], facts(segment="enterprise"))[0]
    assert not run("segment", ["enterprise", "smb"], facts(segment="mid_market"))[0]
    new = facts(customer_since=TODAY - timedelta(days=30))
    renewing = facts(customer_since=date(2020, 1, 1), renewal_date=TODAY + timedelta(days=45))
    assert run("lifecycle", "onboarding", new)[0]
    assert run("lifecycle", ["renewal"], renewing)[0]
    assert run("lifecycle", "adopted", facts(customer_since=date(2020, 1, 1)))[0]
    assert not run("lifecycle", "onboarding", renewing)[0]


def test_combinators():
    crit = facts(
        tier="critical", total=30, segment="enterprise", change=change("at_risk", "critical")
    )
    entered = Condition("tier_entered", ("critical",))
    enterprise = Condition("segment", ("enterprise",))
    smb = Condition("segment", ("smb",))
    assert evaluate_condition(Condition("all", children=(entered, enterprise)), crit, NOW)[:2] == (
        True,
        True,
    )
    assert evaluate_condition(Condition("all", children=(entered, smb)), crit, NOW)[:2] == (
        False,
        False,
    )
    assert evaluate_condition(Condition("any", children=(smb, entered)), crit, NOW)[:2] == (
        True,
        True,
    )
    assert evaluate_condition(Condition("any", children=(smb,)), crit, NOW)[:2] == (False, False)
    assert evaluate_condition(Condition("not", children=(smb,)), crit, NOW)[:2] == (True, True)
    assert evaluate_condition(Condition("not", children=(enterprise,)), crit, NOW)[:2] == (
        False,
        False,
    )
    # all: holds while every part holds, though the tier event fired only once
    later = facts(tier="critical", total=30, segment="enterprise")
    assert evaluate_condition(Condition("all", children=(entered, enterprise)), later, NOW)[:2] == (
        False,
        True,
    )
    _f, _h, why = evaluate_condition(Condition("all", children=(entered, enterprise)), crit, NOW)
    assert why == ["entered critical", "segment enterprise"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("tier_entered", "purple"),
        ("score_dropped", {"within": "30d"}),
        ("score_dropped", {"points": 10, "within": "soon"}),
        ("score_below", 140),
        ("score_below", "low"),
        ("usage_below_baseline", {"percent": 60, "window": "90d"}),
        ("ticket_opened", {"severity": "sev3"}),
        ("sentiment_at_most", 7),
        ("sentiment_falling", "yes"),
        ("segment", "giant"),
        ("renewal_within", {"days": 60, "weeks": 2}),
    ],
)
def test_bad_values_are_refused_with_a_reason(name, value):
    with pytest.raises(ValueError, match=r".+"):
        TRIGGERS[name].parse(value)
