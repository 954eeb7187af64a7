"""The triggers a playbook may use, from the domain articles. Pure: facts and `now` in.

Each trigger answers two questions about an account:
  fires  - should a task open now (or an open one be refreshed)?
  holds  - does the situation it describes still hold (else the task may recover)?
For most triggers both are one state ("renewal within 60 days"); a tier *entered* fires on the
change that moved the tier and holds while the account stays in it.

`TRIGGERS[name].parse(value)` checks and normalises the YAML value (ValueError says what is
wrong); `.needs(params)` says what the adapter must read; `.test(facts, params, now)` returns
(fires, holds); `.describe(params)` is a phrase for people.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from playbooks.facts import LIFECYCLES, AccountFacts
from playbooks.trigger_params import (
    TICKET_SIGNALS,
    one_of,
    parse_adoption,
    parse_days_key,
    parse_no_usage,
    parse_number,
    parse_points,
    parse_score_dropped,
    parse_ticket,
    parse_tiers,
    parse_true,
    parse_usage,
    parse_within,
)


@dataclass
class Needs:
    """What the adapter reads for a set of triggers."""

    stats: set[tuple[str, str]] = field(default_factory=set)  # (signal, statistic)
    lookback: int = 0  # days of observations the statistics must see
    score_windows: set[int] = field(default_factory=set)  # the score N days ago
    weekly: dict[str, int] = field(default_factory=dict)  # signal -> weeks of weekly means
    last_active: dict[str, int] = field(default_factory=dict)  # signal -> days to look back
    sentiment: bool = False

    def merge(self, other: Needs) -> None:
        self.stats |= other.stats
        self.lookback = max(self.lookback, other.lookback)
        self.score_windows |= other.score_windows
        for sig, weeks in other.weekly.items():
            self.weekly[sig] = max(weeks, self.weekly.get(sig, 0))
        for sig, days in other.last_active.items():
            self.last_active[sig] = max(days, self.last_active.get(sig, 0))
        self.sentiment = self.sentiment or other.sentiment


@dataclass(frozen=True)
class Trigger:
    name: str
    help: str
    parse: Callable[[Any], Any]
    test: Callable[[AccountFacts, Any, datetime], tuple[bool, bool]]
    describe: Callable[[Any], str]
    needs: Callable[[Any], Needs] = lambda _p: Needs()


# --- helpers on facts ---------------------------------------------------------------------------


def _stat(f: AccountFacts, signal: str, stat: str) -> float | None:
    s = f.signals.get(signal)
    return None if s is None else s.get(stat)


def _recent_event(f: AccountFacts, signal: str, days: float) -> bool:
    s = f.signals.get(signal)
    return s is not None and (s.latest or 0) > 0 and s.days_since <= days


def _state(result: bool) -> tuple[bool, bool]:
    return result, result


# --- the triggers ------------------------------------------------------------------------------


def _tier_entered(f: AccountFacts, tiers, now) -> tuple[bool, bool]:
    c = f.change
    fires = c is not None and c.to_tier in tiers and c.from_tier not in tiers
    return fires, f.tier in tiers


def _tier_left(f: AccountFacts, tiers, now) -> tuple[bool, bool]:
    c = f.change
    fires = c is not None and c.from_tier in tiers and c.to_tier not in tiers
    return fires, f.tier is not None and f.tier not in tiers


def _score_dropped(f: AccountFacts, p, now) -> tuple[bool, bool]:
    then = f.total_ago.get(int(p["within"]))
    return _state(then is not None and f.total is not None and then - f.total >= p["points"])


def _usage_below(f: AccountFacts, p, now) -> tuple[bool, bool]:
    current, base = _stat(f, p["signal"], p["stat"]), _stat(f, p["signal"], "baseline")
    if current is None or not base:
        return _state(False)  # no baseline to compare with: not evidence of a fall
    return _state(current / base * 100 < p["percent"])


def _no_usage(f: AccountFacts, p, now) -> tuple[bool, bool]:
    if p["signal"] not in f.signals:
        return _state(False)  # no usage data at all is missing data, not a dormant account
    days = f.last_active_days.get(p["signal"])
    return _state(days is None or days >= p["days"])


def _adoption_falling(f: AccountFacts, p, now) -> tuple[bool, bool]:
    weeks = f.weekly.get(p["signal"], ())[: int(p["weeks"]) + 1]
    if len(weeks) < p["weeks"] + 1 or any(w is None for w in weeks):
        return _state(False)
    return _state(all(a < b for a, b in zip(weeks, weeks[1:], strict=False)))


def _falling(f: AccountFacts, signal: str, points: float) -> bool:
    recent, base = _stat(f, signal, "avg_30d"), _stat(f, signal, "baseline")
    return recent is not None and base is not None and recent <= base - points


def _ticket_opened(f: AccountFacts, p, now) -> tuple[bool, bool]:
    return _state(any(_recent_event(f, TICKET_SIGNALS[s], p["within"]) for s in p["severity"]))


def _ticket_open_longer(f: AccountFacts, p, now) -> tuple[bool, bool]:
    s = f.signals.get("oldest_open_ticket_days")  # snapshot: age of the oldest open ticket
    if s is None or not s.latest:
        return _state(False)
    return _state(s.latest + s.days_since >= p["days"])


def _invoice_late(f: AccountFacts, p, now) -> tuple[bool, bool]:
    s = f.signals.get("payment_days_late")
    if s is None or not s.latest:
        return _state(False)
    return _state(s.latest + s.days_since >= p["days"])


def _renewal_within(f: AccountFacts, p, now) -> tuple[bool, bool]:
    days = f.renewal_days(now.date())
    return _state(days is not None and 0 <= days <= p["days"])


def _sentiment_falling(f: AccountFacts, p, now) -> tuple[bool, bool]:
    fell = f.sentiment is not None and (
        f.sentiment_direction == "declining"
        or (f.previous_sentiment is not None and f.sentiment < f.previous_sentiment)
    )
    return _state(fell)


BASELINE_DAYS = 180  # the baseline is the mean of days 180..90 before now
SNAPSHOT_DAYS = 365  # a snapshot stays true until a newer one says otherwise


def _stats(*pairs: tuple[str, str], lookback: int = BASELINE_DAYS) -> Callable[[Any], Needs]:
    return lambda _p: Needs(stats=set(pairs), lookback=lookback)


def _event(signal: str) -> Callable[[Any], Needs]:
    """The newest event of `signal`, looked for only as far back as the trigger's period."""
    return lambda p: Needs(stats={(signal, "latest")}, lookback=int(p["within"]) + 1)


TRIGGERS: dict[str, Trigger] = {
    t.name: t
    for t in (
        Trigger(
            "tier_entered",
            "the announced tier moved into one of these tiers",
            parse_tiers,
            _tier_entered,
            lambda t: f"entered {' / '.join(t).replace('_', ' ')}",
        ),
        Trigger(
            "tier_left",
            "the announced tier moved out of one of these tiers",
            parse_tiers,
            _tier_left,
            lambda t: f"left {' / '.join(t).replace('_', ' ')}",
        ),
        Trigger(
            "tier_is",
            "the announced tier is one of these",
            parse_tiers,
            lambda f, t, now: _state(f.tier in t),
            lambda t: f"is {' / '.join(t).replace('_', ' ')}",
        ),
        Trigger(
            "score_dropped",
            "{points: N, within: 30d}: the score is N points lower than it was that long ago",
            parse_score_dropped,
            _score_dropped,
            lambda p: f"score fell {p['points']:g}+ points in {p['within']} days",
            lambda p: Needs(score_windows={int(p["within"])}),
        ),
        Trigger(
            "score_below",
            "N: the score is below N",
            lambda v: parse_number(v, hi=100),
            lambda f, x, now: _state(f.total is not None and f.total < x),
            lambda x: f"score below {x:g}",
        ),
        Trigger(
            "score_at_least",
            "N: the score is N or more",
            lambda v: parse_number(v, hi=100),
            lambda f, x, now: _state(f.total is not None and f.total >= x),
            lambda x: f"score {x:g} or more",
        ),
        Trigger(
            "usage_below_baseline",
            "{percent: 60, signal: active_users, window: 7d|30d}: usage below P% of baseline",
            parse_usage,
            _usage_below,
            lambda p: f"usage below {p['percent']:g}% of baseline",
            lambda p: Needs(
                stats={(p["signal"], p["stat"]), (p["signal"], "baseline")},
                lookback=BASELINE_DAYS,
            ),
        ),
        Trigger(
            "no_usage",
            "{days: 14, signal: active_users}: no product usage for D days",
            parse_no_usage,
            _no_usage,
            lambda p: f"no product usage for {p['days']:g} days",
            lambda p: Needs(
                stats={(p["signal"], "latest")},
                lookback=max(90, int(p["days"]) + 1),  # any usage data: it is measured at all
                last_active={p["signal"]: int(p["days"]) + 1},
            ),
        ),
        Trigger(
            "adoption_falling",
            "{weeks: 3, signal: core_features_used}: weekly adoption fell W weeks in a row",
            parse_adoption,
            _adoption_falling,
            lambda p: f"core-feature adoption fell {p['weeks']:g} weeks in a row",
            lambda p: Needs(weekly={p["signal"]: int(p["weeks"]) + 1}),
        ),
        Trigger(
            "champion_left",
            "{within: 30d}: the champion left in the period",
            parse_within("30d"),
            lambda f, p, now: _state(_recent_event(f, "champion_left", p["within"])),
            lambda p: "the champion left",
            _event("champion_left"),
        ),
        Trigger(
            "ticket_opened",
            "{severity: [sev1, sev2], within: 7d}: a ticket of that severity was opened",
            parse_ticket,
            _ticket_opened,
            lambda p: f"a {'/'.join(p['severity'])} ticket was opened",
            lambda p: Needs(stats={(TICKET_SIGNALS[s], "latest") for s in p["severity"]}),
        ),
        Trigger(
            "ticket_open_longer",
            "{days: 10}: a ticket has been open longer than D days",
            parse_days_key,
            _ticket_open_longer,
            lambda p: f"a ticket open over {p['days']:g} days",
            _stats(("oldest_open_ticket_days", "latest"), lookback=SNAPSHOT_DAYS),
        ),
        Trigger(
            "nps_falling",
            "{points: 2}: NPS over 30 days fell N points below the account's baseline",
            parse_points(10),
            lambda f, p, now: _state(_falling(f, "nps", p["points"])),
            lambda p: "NPS falling",
            _stats(("nps", "avg_30d"), ("nps", "baseline")),
        ),
        Trigger(
            "csat_falling",
            "{points: 15}: CSAT over 30 days fell N points below the account's baseline",
            parse_points(100),
            lambda f, p, now: _state(_falling(f, "csat", p["points"])),
            lambda p: "CSAT falling",
            _stats(("csat", "avg_30d"), ("csat", "baseline")),
        ),
        Trigger(
            "payment_failed",
            "{within: 30d}: a payment failed in the period",
            parse_within("30d"),
            lambda f, p, now: _state(_recent_event(f, "payment_failed", p["within"])),
            lambda p: "a payment failed",
            _event("payment_failed"),
        ),
        Trigger(
            "invoice_late",
            "{days: 30}: the oldest open invoice is D days past due",
            parse_days_key,
            _invoice_late,
            lambda p: f"an invoice {p['days']:g}+ days late",
            _stats(("payment_days_late", "latest"), lookback=SNAPSHOT_DAYS),
        ),
        Trigger(
            "renewal_within",
            "{days: 90}: the renewal is at most D days away",
            parse_days_key,
            _renewal_within,
            lambda p: f"renewal within {p['days']:g} days",
        ),
        Trigger(
            "sentiment_at_most",
            "R: the newest CSM sentiment is R or lower (1-5)",
            lambda v: parse_number(v, lo=1, hi=5, what="a rating"),
            lambda f, r, now: _state(f.sentiment is not None and f.sentiment <= r),
            lambda r: f"CSM sentiment {r:g}/5 or lower",
            lambda _p: Needs(sentiment=True),
        ),
        Trigger(
            "sentiment_falling",
            "true: the newest CSM sentiment is lower than the one before, or declining",
            parse_true,
            _sentiment_falling,
            lambda _p: "CSM sentiment falling",
            lambda _p: Needs(sentiment=True),
        ),
        Trigger(
            "segment",
            "[enterprise, mid_market, smb]: the account is in one of these segments",
            one_of(["enterprise", "mid_market", "smb"]),
            lambda f, s, now: _state(f.segment in s),
            lambda s: f"segment {' / '.join(s)}",
        ),
        Trigger(
            "lifecycle",
            f"{list(LIFECYCLES)}: the account's lifecycle stage",
            one_of(LIFECYCLES),
            lambda f, s, now: _state(f.lifecycle(now.date()) in s),
            lambda s: f"lifecycle {' / '.join(s)}",
        ),
    )
}
