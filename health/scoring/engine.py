"""The scoring engine: statistics in, a score with its breakdown out. Pure: no DB, no clock."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import NamedTuple

import numpy as np

from health.scoring.model import INSUFFICIENT, TIERS, Bands, ScoringModel
from health.scoring.stats import SignalStats
from health.scoring.vector import Arrays, Plan, compute_columns, fill


@dataclass(frozen=True, slots=True)
class AccountContext:
    name: str
    segment: str | None = None
    customer_since: date | None = None
    renewal_date: date | None = None


@dataclass(frozen=True, slots=True)
class PriorState:
    """What the account's score history says; all None for a first score."""

    tier: str | None = None  # yesterday's raw tier
    announced_tier: str | None = None
    pending_since: date | None = None
    total: float | None = None
    total_30d_ago: float | None = None
    total_90d_ago: float | None = None
    metrics_30d_ago: Mapping[str, float] = field(default_factory=dict)


class MetricResult(NamedTuple):
    key: str
    label: str
    signal: str
    format: str
    value: float | None
    score: float | None
    share: float  # of the total score; 0 when missing


class ComponentResult(NamedTuple):
    key: str
    label: str
    weight: float
    share: float
    score: float | None
    age_days: float | None  # age of the newest observation among its signals
    stale: bool
    metrics: tuple[MetricResult, ...]


class Driver(NamedTuple):
    metric: str
    signal: str
    label: str
    format: str
    from_value: float | None
    to_value: float
    impact: float  # points of the total this metric moved (or costs, without history)


class ScoreResult(NamedTuple):
    total: float
    tier: str
    announced_tier: str
    pending_since: date | None
    tier_announced: bool  # the announced tier changed with this score
    hard_events: tuple[str, ...]
    components: tuple[ComponentResult, ...]
    confidence: float
    trend_30d: float | None
    trend_90d: float | None
    trend: str  # up / flat / down / new
    drivers: tuple[Driver, ...]
    bands: Bands
    stages: tuple[str, ...]
    model_version: str
    # as stored: {component: {score, share, age_days, stale, metrics: {metric: [value, score]}}}
    # (rounded; metrics without data left out)
    breakdown: dict


_PLANS: dict[int, tuple[ScoringModel, Plan]] = {}


def plan_of(model: ScoringModel) -> Plan:
    """The model compiled for scoring (its statistics columns: `plan_of(model).columns`)."""
    return _plan(model)


def _plan(model: ScoringModel) -> Plan:
    hit = _PLANS.get(id(model))
    if hit is not None and hit[0] is model:
        return hit[1]
    if len(_PLANS) >= 16:  # a long-lived process that reloads its model keeps a few
        _PLANS.clear()
    plan = Plan(model)
    _PLANS[id(model)] = (model, plan)  # the model is kept alive, so its id stays its own
    return plan


def tier_bands(model: ScoringModel, account: AccountContext, today: date) -> tuple[Bands, tuple]:
    bands = model.tiers.segments.get(account.segment, model.tiers.bands)  # type: ignore[arg-type]
    adjust, stages = 0.0, []
    onboarding = model.tiers.lifecycle.get("onboarding")
    since = account.customer_since
    if onboarding and since and 0 <= (today - since).days < onboarding.days:
        adjust += onboarding.adjust
        stages.append("onboarding")
    renewal = model.tiers.lifecycle.get("renewal_window")
    renews = account.renewal_date
    if renewal and renews and 0 <= (renews - today).days <= renewal.days:
        adjust += renewal.adjust
        stages.append("renewal_window")
    if adjust:
        memo = _plan(model).bands
        key = (account.segment if account.segment in model.tiers.segments else None, adjust)
        adjusted = memo.get(key)
        if adjusted is None:
            clamp = lambda v: min(100.0, max(0.0, v + adjust))  # noqa: E731
            adjusted = Bands(
                healthy=clamp(bands.healthy),
                monitor=clamp(bands.monitor),
                at_risk=clamp(bands.at_risk),
            )
            memo[key] = adjusted
        bands = adjusted
    return bands, tuple(stages)


def tier_for(total: float, bands: Bands) -> str:
    if total >= bands.healthy:
        return "healthy"
    if total >= bands.monitor:
        return "monitor"
    return "at_risk" if total >= bands.at_risk else "critical"


def announce(
    raw: str, prior: PriorState, *, hard_event: bool, today: date, hold_days: int
) -> tuple[str, date | None, bool]:
    """(announced tier, pending since, changed now). A change must hold `hold_days` unless a
    hard event makes the tier worse, which is announced at once; so is a change to or from
    insufficient data (no tier to keep claiming, or no claim made yet to keep)."""
    current = prior.announced_tier
    if current is None:
        return raw, None, False
    if raw == current:
        return current, None, False
    if INSUFFICIENT in (raw, current):
        return raw, None, True
    if hard_event and TIERS.index(raw) > TIERS.index(current):
        return raw, None, True
    since = prior.pending_since if (prior.tier == raw and prior.pending_since) else today
    if (today - since).days >= hold_days:
        return raw, None, True
    return current, since, False


def score(
    stats: Mapping[str, SignalStats],
    model: ScoringModel,
    *,
    account: AccountContext,
    prior: PriorState,
    now: datetime,
) -> ScoreResult | None:
    """Score one account at `now`; None when no metric has any data."""
    return score_many([stats], model, accounts=[account], priors=[prior], now=now)[0]


def score_many(
    stats: Sequence[Mapping[str, SignalStats]],
    model: ScoringModel,
    *,
    accounts: Sequence[AccountContext],
    priors: Sequence[PriorState],
    now: datetime,
) -> list[ScoreResult | None]:
    """Score many accounts at `now` (the arithmetic for all at once, see `vector`); per
    account its result, or None when no metric has any data."""
    x = fill(plan_of(model).columns, stats)
    return score_columns(x, model, accounts=accounts, priors=priors, now=now)


def score_columns(
    x: np.ndarray,
    model: ScoringModel,
    *,
    accounts: Sequence[AccountContext],
    priors: Sequence[PriorState],
    now: datetime,
) -> list[ScoreResult | None]:
    """`score_many`, from statistics already laid out as `plan_of(model).columns`: one row per
    (signal, statistic), one column per account (`vector.fill` or `vector.scatter`)."""
    plan = _plan(model)
    rows = _Rows(compute_columns(plan, x, [p.metrics_30d_ago for p in priors]))
    today = now.date()
    return [
        _result(model, plan, rows, i, account, prior, today) if rows.present[i] else None
        for i, (account, prior) in enumerate(zip(accounts, priors, strict=True))
    ]


class _Rows:
    """The batch's arrays as plain lists per account (numpy element access is slow one by
    one), and the rounded values the stored breakdown keeps, rounded once for the batch."""

    def __init__(self, a: Arrays):
        self.present = a.present.tolist()
        self.values, self.scores, self.shares = _lists(a.values), _lists(a.scores), _lists(a.shares)
        self.moved, self.before = _lists(a.moved), _lists(a.before)
        self.comp_shares, self.comp_scores = _lists(a.comp_shares), _lists(a.comp_scores)
        self.ages, self.stale = _lists(a.ages), _lists(a.stale)
        self.totals, self.confidence = a.totals.tolist(), a.confidence.tolist()
        self.hard = [h.tolist() for h in a.hard]
        self.kept_values, self.kept_scores = _lists(a.values, 4), _lists(a.scores, 1)
        self.kept_shares = _lists(a.comp_shares, 4)
        self.kept_comp_scores, self.kept_ages = _lists(a.comp_scores, 1), _lists(a.ages, 1)


def _lists(arr: np.ndarray, digits: int | None = None) -> list:
    if digits is not None:
        with np.errstate(over="ignore", invalid="ignore"):
            rounded = np.round(arr, digits)
        # values too large to scale for rounding stay as they are
        arr = np.where(np.isfinite(rounded) | ~np.isfinite(arr), rounded, arr)
    return arr.T.tolist()


def _result(
    model: ScoringModel,
    plan: Plan,
    rows: _Rows,
    i: int,
    account: AccountContext,
    prior: PriorState,
    today: date,
) -> ScoreResult:
    components, stored, moved, costs = _components(model, plan, rows, i)
    total = round(min(100.0, max(0.0, rows.totals[i])), 1)
    confidence = round(rows.confidence[i], 3)
    bands, stages = tier_bands(model, account, today)
    raw = tier_for(total, bands) if confidence >= model.tiers.min_confidence else INSUFFICIENT
    hard = tuple(key for (key, *_), h in zip(plan.hard_events, rows.hard, strict=True) if h[i])
    announced, pending, changed = announce(
        raw, prior, hard_event=bool(hard), today=today, hold_days=model.tiers.hold_days
    )
    trend_30 = None if prior.total_30d_ago is None else round(total - prior.total_30d_ago, 1)
    trend_90 = None if prior.total_90d_ago is None else round(total - prior.total_90d_ago, 1)
    flat = model.trend.flat_points
    if trend_30 is None:
        trend = "new"
    else:
        trend = "up" if trend_30 > flat else "down" if trend_30 < -flat else "flat"
    return ScoreResult(
        total=total,
        tier=raw,
        announced_tier=announced,
        pending_since=pending,
        tier_announced=changed,
        hard_events=hard,
        components=components,
        confidence=confidence,
        trend_30d=trend_30,
        trend_90d=trend_90,
        trend=trend,
        drivers=pick_drivers(moved, costs, trend),
        bands=bands,
        stages=stages,
        model_version=model.version,
        breakdown=stored,
    )


def _components(
    model: ScoringModel, plan: Plan, rows: _Rows, i: int
) -> tuple[tuple[ComponentResult, ...], dict, list[Driver], list[Driver]]:
    """Account i's components, their stored breakdown, and its candidate drivers: metrics
    that moved the total by a point or more in 30 days, and metrics that cost it a point or
    more."""
    vals, scs, shs, mov, bef = (
        rows.values[i],
        rows.scores[i],
        rows.shares[i],
        rows.moved[i],
        rows.before[i],
    )
    kv, ks = rows.kept_values[i], rows.kept_scores[i]
    ages, stale, c_shares, c_scores = (
        rows.ages[i],
        rows.stale[i],
        rows.comp_shares[i],
        rows.comp_scores[i],
    )
    moved, costs, components, stored = [], [], [], {}
    for c, ckey in enumerate(plan.component_keys):
        comp = model.components[ckey]
        metrics, kept = [], {}
        for j, key, m in plan.component_metrics[c]:
            v = vals[j]
            if v != v:  # NaN: no data
                metrics.append(MetricResult(key, m.label, m.signal, m.format, None, None, 0.0))
                continue
            s, share = scs[j], shs[j]
            metrics.append(MetricResult(key, m.label, m.signal, m.format, v, s, share))
            kept[key] = [kv[j], ks[j]]
            impact = mov[j]
            if impact == impact and abs(impact) >= 1.0:
                moved.append(Driver(key, m.signal, m.label, m.format, bef[j], v, impact))
            cost = share * (s - 100)
            if cost <= -1.0:
                costs.append(Driver(key, m.signal, m.label, m.format, None, v, cost))
        score, age = c_scores[c], ages[c]
        components.append(
            ComponentResult(
                ckey,
                comp.label,
                comp.weight,
                c_shares[c],
                None if score != score else score,
                None if age != age else age,
                stale[c],
                tuple(metrics),
            )
        )
        stored[ckey] = {
            "score": None if score != score else rows.kept_comp_scores[i][c],
            "share": rows.kept_shares[i][c],
            "age_days": None if age != age else rows.kept_ages[i][c],
            "stale": stale[c],
            "metrics": kept,
        }
    return tuple(components), stored, moved, costs


def pick_drivers(
    moved: list[Driver], costs: list[Driver], trend: str, *, limit: int = 3
) -> tuple[Driver, ...]:
    """Which metrics moved the score over 30 days (from what to what), in the direction of the
    trend; without such movement, the metrics that cost it the most points."""
    if trend == "up":
        moved = sorted((d for d in moved if d.impact > 0), key=lambda d: -d.impact)
    elif trend == "down":
        moved = sorted((d for d in moved if d.impact < 0), key=lambda d: d.impact)
    else:
        moved = sorted(moved, key=lambda d: -abs(d.impact))
    picked = moved[:limit]
    names = {d.metric for d in picked}
    costs = sorted(costs, key=lambda d: d.impact)
    picked += [d for d in costs if d.metric not in names][: limit - len(picked)]
    return tuple(picked)
