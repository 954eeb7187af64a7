"""The sandbox portfolio generator: determinism, shape, the signal catalogue, and that the
hidden trajectories really show in the data."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest
import yaml

import health.scoring
from connectors.sandbox.names import company_names
from connectors.sandbox.portfolio import (
    TRAJECTORIES,
    Portfolio,
    account_records,
    generate_portfolio,
    observation_records,
    outcome_records,
)
from health.records import OUTCOME_KINDS, SEGMENTS

MODEL = Path(health.scoring.__file__).parent / "default_model.yaml"
SEATS = {"enterprise": (200, 2000), "mid_market": (40, 300), "smb": (5, 50)}
DAILY = ("active_users", "core_features_used", "key_events", "seats")


@pytest.fixture(scope="module")
def portfolio() -> Portfolio:
    return generate_portfolio(300, 365, seed=11)


@pytest.fixture(scope="module")
def observations(portfolio):
    return list(observation_records(portfolio))


@pytest.fixture(scope="module")
def active_users(observations) -> dict[str, list[float]]:
    """account id -> daily active users, in day order"""
    series = defaultdict(list)
    for o in sorted(observations, key=lambda o: o.observed_at):
        if o.signal == "active_users":
            series[o.account.crm_id].append(o.value)
    return series


def _established(p: Portfolio):
    """Accounts with data over the whole window: customers before it, never churned."""
    return [a for a in p.accounts if a.customer_since <= p.start and a.churned_on is None]


def test_same_seed_gives_identical_output():
    a, b = generate_portfolio(40, 120, seed=3), generate_portfolio(40, 120, seed=3)
    assert a == b
    assert list(observation_records(a)) == list(observation_records(b))
    assert outcome_records(a) == outcome_records(b)


def test_different_seed_gives_different_output():
    a, b = generate_portfolio(40, 120, seed=3), generate_portfolio(40, 120, seed=4)
    assert [x.name for x in a.accounts] != [x.name for x in b.accounts]
    assert [u.active_users for u in a.usage[:200]] != [u.active_users for u in b.usage[:200]]


def test_an_account_does_not_depend_on_portfolio_size():
    small, large = generate_portfolio(10, 60, seed=5), generate_portfolio(30, 60, seed=5)
    assert small.accounts == large.accounts[:10]


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        generate_portfolio(10, 0)
    with pytest.raises(ValueError):
        generate_portfolio(-1, 30)


def test_window_and_counts(portfolio):
    p = portfolio
    assert (p.end - p.start).days + 1 == 365 and len(p.accounts) == 300
    assert p.truth() == {a.external_id: a.trajectory for a in p.accounts}
    assert len(p.usage) <= 300 * 365
    for name in ("tickets", "contacts", "touches", "nps", "invoices", "renewals"):
        assert len(getattr(p, name)) >= 300 // 2, name
    last_day = {}
    for u in p.usage:
        last_day[u.account_id] = u.day
    for a in p.accounts:  # usage runs to `end`, or stops the day a churned account leaves
        stop = a.churned_on - timedelta(days=1) if a.churned_on else p.end
        assert last_day[a.external_id] == stop


def test_mix_of_segments_trajectories_and_onboarding(portfolio):
    n = len(portfolio.accounts)
    segments = Counter(a.segment for a in portfolio.accounts)
    for segment, share in (("enterprise", 0.15), ("mid_market", 0.35), ("smb", 0.50)):
        assert abs(segments[segment] / n - share) < 0.08, segments
    trajectories = Counter(a.trajectory for a in portfolio.accounts)
    assert set(trajectories) == set(TRAJECTORIES)
    for traj, share in zip(TRAJECTORIES, (0.45, 0.22, 0.13, 0.20), strict=True):
        assert abs(trajectories[traj] / n - share) < 0.08, trajectories
    new = [a for a in portfolio.accounts if a.customer_since > portfolio.start]
    assert 0.03 <= len(new) / n <= 0.15
    assert len({a.owner for a in portfolio.accounts}) == 8


def test_seats_and_arr_follow_segment(portfolio):
    first_seats = {}
    for u in portfolio.usage:
        first_seats.setdefault(u.account_id, u.seats)
    arr = defaultdict(list)
    for a in portfolio.accounts:
        lo, hi = SEATS[a.segment]
        assert lo <= first_seats[a.external_id] <= hi, a
        assert 150 <= a.arr / a.seats <= 1500, a
        arr[a.segment].append(a.arr)
    means = {s: statistics.mean(v) for s, v in arr.items()}
    assert means["enterprise"] > 3 * means["mid_market"] > 3 * means["smb"]


def test_every_signal_is_in_the_catalogue_and_all_are_produced(observations):
    catalogue = set(yaml.safe_load(MODEL.read_text())["signals"])
    assert {o.signal for o in observations} == catalogue


def test_observations_are_well_formed(portfolio, observations):
    lo = datetime.combine(portfolio.start, time(), UTC)
    hi = datetime.combine(portfolio.end, time(), UTC) + timedelta(days=1)
    ranges = {
        "nps": (0, 10), "csm_sentiment": (1, 5), "core_features_used": (0, 8), "csat": (0, 100),
        "open_tickets": (0, 500), "payment_days_late": (0, 400),
    }  # fmt: skip
    for o in observations:
        assert o.observed_at.utcoffset() == timedelta(0) and lo <= o.observed_at < hi, o
        assert o.source == "sandbox" and isinstance(o.value, float)
        low, high = ranges.get(o.signal, (0, 10**7))
        assert low <= o.value <= high, o
        if o.signal == "csat":
            assert o.value in (0.0, 100.0)
        if o.signal in DAILY:
            assert o.observed_at.time() == time(0), o
    assert next(observation_records(portfolio, source="demo")).source == "demo"


def test_active_users_never_exceed_seats(portfolio):
    assert all(0 <= u.active_users <= u.seats for u in portfolio.usage)
    assert all(0 <= u.core_features_used <= 8 and u.key_events >= 0 for u in portfolio.usage)


def test_observation_natural_keys_are_unique(observations):
    keys = Counter((o.account.key(), o.signal, o.observed_at) for o in observations)
    assert keys.most_common(1)[0][1] == 1


def test_nothing_before_customer_since(portfolio, observations):
    since = {a.external_id: a.customer_since for a in portfolio.accounts}
    assert all(o.observed_at.date() >= since[o.account.crm_id] for o in observations)
    assert all(u.day >= since[u.account_id] for u in portfolio.usage)
    assert all(t.created_at.date() >= since[t.account_id] for t in portfolio.tickets)
    assert all(r.close_date > since[r.account_id] for r in portfolio.renewals)
    new = [a for a in portfolio.accounts if a.customer_since > portfolio.start]
    first = {}
    for u in portfolio.usage:
        first.setdefault(u.account_id, u.day)
    assert new and all(first[a.external_id] == a.customer_since for a in new)


def test_first_values_and_seat_snapshots(portfolio, observations):
    firsts = {}
    for o in sorted(observations, key=lambda o: o.observed_at):
        firsts.setdefault((o.account.crm_id, o.signal), o)
    for a in portfolio.accounts:
        opened = firsts[(a.external_id, "open_tickets")]
        assert opened.value == 0.0 and opened.observed_at.date() == max(
            portfolio.start, a.customer_since
        )
        assert firsts[(a.external_id, "seats")].observed_at == opened.observed_at
    seat_obs = sum(o.signal == "seats" for o in observations)
    assert len(portfolio.accounts) <= seat_obs < 3 * len(portfolio.accounts)


def test_open_ticket_snapshots_match_the_tickets(portfolio, observations):
    latest = {}
    for o in sorted(observations, key=lambda o: o.observed_at):
        if o.signal == "open_tickets":
            latest[o.account.crm_id] = o.value
    unsolved = Counter(t.account_id for t in portfolio.tickets if t.solved_at is None)
    assert sum(unsolved.values()) > 0
    for a in portfolio.accounts:
        assert latest[a.external_id] == unsolved[a.external_id], a.external_id
    for t in portfolio.tickets:
        assert (t.solved_at is None) == (t.status in ("new", "open", "pending")), t


def test_declining_and_shocked_accounts_lose_usage(portfolio, active_users):
    ratios = defaultdict(list)
    for a in _established(portfolio):
        series = active_users[a.external_id]
        ratios[a.trajectory].append(
            statistics.mean(series[-14:]) / max(1e-9, statistics.mean(series[:90]))
        )
    thriving = statistics.mean(ratios["thriving"])
    assert thriving > 0.95
    for traj in ("slow_decline", "sudden_shock"):
        assert statistics.mean(ratios[traj]) < thriving - 0.3, traj
    assert statistics.mean(ratios["recovering"]) > 0.85


def test_sudden_shocks_are_recent_and_visible(portfolio, observations):
    hard = defaultdict(list)  # account -> days of champion_left / sev1_ticket
    for o in observations:
        if o.signal in ("champion_left", "sev1_ticket"):
            hard[o.account.crm_id].append(o.observed_at.date())
    shocked = [a for a in portfolio.accounts if a.trajectory == "sudden_shock"]
    assert shocked
    for a in shocked:
        assert 20 <= (portfolio.end - a.shock_day).days <= 75, a
        if a.churned_on is None or a.churned_on > a.shock_day:
            assert a.shock_day in hard[a.external_id], a
    assert all(a.shock_day is None for a in portfolio.accounts if a.trajectory != "sudden_shock")


def test_weekends_are_quieter(portfolio):
    weekday, weekend = [], []
    for u in portfolio.usage:
        (weekend if u.day.weekday() >= 5 else weekday).append(u.active_users)
    assert 0.25 < statistics.mean(weekend) / statistics.mean(weekday) < 0.45


def test_sentiment_and_nps_follow_the_trajectory(portfolio, observations):
    recent = portfolio.end - timedelta(days=60)
    truth = portfolio.truth()
    values = defaultdict(list)
    for o in observations:
        if o.signal in ("csm_sentiment", "nps") and o.observed_at.date() >= recent:
            group = "bad" if truth[o.account.crm_id] in ("slow_decline", "sudden_shock") else ""
            values[(o.signal, group or truth[o.account.crm_id])].append(o.value)
    for signal in ("csm_sentiment", "nps"):
        assert (
            statistics.mean(values[(signal, "bad")])
            < statistics.mean(values[(signal, "thriving")]) - 1.0
        ), signal


def test_declining_and_shocked_renewals_churn_more(portfolio):
    truth = portfolio.truth()
    closed = defaultdict(list)
    for r in portfolio.renewals:
        if r.outcome != "open":
            bad = truth[r.account_id] in ("slow_decline", "sudden_shock")
            closed["bad" if bad else truth[r.account_id]].append(r.outcome)
    rate = {k: v.count("churned") / len(v) for k, v in closed.items()}
    assert rate["thriving"] < 0.08 and rate["bad"] > rate["thriving"] + 0.1, rate
    others = closed["bad"] + closed["recovering"]
    expanded = closed["thriving"].count("expanded") / len(closed["thriving"])
    assert expanded > 0.2 and expanded > 2 * others.count("expanded") / len(others)


def test_most_churners_fade_months_before_the_close(portfolio):
    """The warning a health score lives on: three months before the close, most accounts that
    go on to churn already use the product far less than a quarter earlier; renewers do not."""
    daily = defaultdict(dict)
    for u in portfolio.usage:
        daily[u.account_id][u.day] = u.active_users

    def ratio(r) -> float | None:  # mean use 90-119 days before the close / 180-239 days before
        def mean(lo: int, hi: int) -> float | None:
            xs = [daily[r.account_id].get(r.close_date - timedelta(days=k)) for k in range(lo, hi)]
            xs = [x for x in xs if x is not None]
            return sum(xs) / len(xs) if len(xs) >= 20 else None

        late, early = mean(90, 120), mean(180, 240)
        return None if late is None or not early else late / early

    faded = defaultdict(list)
    for r in portfolio.renewals:
        if r.outcome != "open" and (x := ratio(r)) is not None:
            faded[r.outcome == "churned"].append(x < 0.8)
    assert len(faded[True]) >= 10
    share = {k: sum(v) / len(v) for k, v in faded.items()}
    assert share[True] >= 0.6 and share[False] <= 0.2, share


def test_renewals_open_only_after_end(portfolio):
    p, by_account = portfolio, defaultdict(list)
    for r in p.renewals:
        by_account[r.account_id].append(r)
        if r.outcome == "open":
            assert r.close_date > p.end
        else:
            assert p.start <= r.close_date <= p.end and r.outcome in OUTCOME_KINDS
    for a in p.accounts:
        opens = [r for r in by_account[a.external_id] if r.outcome == "open"]
        churns = [r for r in by_account[a.external_id] if r.outcome == "churned"]
        assert a.renewal_date > p.end and (a.renewal_date - p.end).days <= 366
        if a.churned_on:
            assert not opens and [r.close_date for r in churns] == [a.churned_on]
        else:
            assert [r.close_date for r in opens] == [a.renewal_date] and not churns
        if a.customer_since <= p.start - timedelta(days=1):  # an anniversary fell in the window
            assert len(by_account[a.external_id]) - len(opens) == 1, a


def test_outcome_and_account_records(portfolio):
    outcomes = outcome_records(portfolio, source="demo")
    closed = [r for r in portfolio.renewals if r.outcome != "open"]
    assert len(outcomes) == len(closed) and {o.kind for o in outcomes} == set(OUTCOME_KINDS)
    for o in outcomes:
        assert o.source == "demo" and o.account.crm_id and o.external_id
        if o.kind == "churned":
            assert o.arr_change < 0
        if o.kind == "expanded":
            assert o.arr_change > 0
    accounts = account_records(portfolio)
    assert [a.external_id for a in accounts] == [a.external_id for a in portfolio.accounts]
    assert all(a.source == "sandbox" and a.segment in SEGMENTS and a.arr > 0 for a in accounts)
    assert all(a.owner.endswith("@healthbot-sandbox.test") for a in accounts)


def test_names_domains_and_ids_are_unique(portfolio):
    p = portfolio
    for values in (
        [a.name for a in p.accounts],
        [a.domain for a in p.accounts],
        [a.external_id for a in p.accounts],
        [c.email for c in p.contacts],
        [x.external_id for x in (*p.tickets, *p.contacts, *p.touches, *p.invoices, *p.renewals)],
    ):
        assert len(values) == len(set(values))
    assert all(len(a.external_id) == 18 and a.external_id.startswith("001") for a in p.accounts)
    assert all(a.domain.endswith(".com") and " " not in a.domain for a in p.accounts)
    assert generate_portfolio(3, 10, seed=1).accounts[0].external_id == "001SB0000000001YAA"


def test_company_names_stay_unique_past_the_word_lists():
    names = company_names(15_000, seed=2)
    assert len(set(names)) == 15_000
    assert names[:100] == company_names(100, seed=2)
