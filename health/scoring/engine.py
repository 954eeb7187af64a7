"""The scoring engine: statistics in, a score with its breakdown out. Pure: no DB, no clock."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import NamedTuple

from health.scoring.model import TIERS, Bands, ComponentDef, MetricDef, ScoringModel
from health.scoring.stats import SignalStats

EVENT_STATS = ("sum_30d", "sum_90d")


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

    def metric_values(self) -> dict[str, float]:
        return {m.key: m.value for c in self.components for m in c.metrics if m.value is not None}


def interpolate(points: tuple[tuple[float, float], ...], x: float) -> float:
    if x <= points[0][0]:
        return points[0][1]
    for (x0, y0), (x1, y1) in zip(points, points[1:], strict=False):
        if x <= x1:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return points[-1][1]


_FIELD = {name: i for i, name in enumerate(SignalStats._fields)}


class _MetricPlan:
    """One metric, compiled: where its value sits in the statistics, how it maps to points."""

    __slots__ = (
        "key", "metric", "label", "signal", "format", "points", "weight_share",
        "stat", "event", "ratio", "ratio_signal", "ratio_stat",
    )  # fmt: skip

    @classmethod
    def of(cls, key: str, m: MetricDef, weight_share: float) -> _MetricPlan:
        self = cls()
        self.key, self.metric, self.weight_share = key, m, weight_share
        self.label, self.signal, self.format, self.points = m.label, m.signal, m.format, m.points
        self.stat, self.event = _FIELD[m.stat], m.stat in EVENT_STATS
        # ratio: 0 none, 1 the signal's own baseline, 2 another signal's statistic
        self.ratio, self.ratio_signal, self.ratio_stat = 0, "", 0
        if m.ratio_to == "baseline":
            self.ratio, self.ratio_stat = 1, _FIELD["baseline"]
        elif m.ratio_to:
            signal, _, stat = m.ratio_to.partition(".")
            self.ratio, self.ratio_signal, self.ratio_stat = 2, signal, _FIELD[stat]
        return self

    def value(self, stats: Mapping[str, SignalStats], source_seen: bool) -> float | None:
        s = stats.get(self.signal)
        if s is None:
            # An event that never happened is a zero, as long as its source reports at all.
            return 0.0 if self.event and source_seen else None
        value = s[self.stat]
        if value is None:
            if not self.event:
                return None
            value = 0.0
        if not self.ratio:
            return value
        if self.ratio == 1:
            ref = s[self.ratio_stat]
        else:
            other = stats.get(self.ratio_signal)
            ref = other[self.ratio_stat] if other is not None else None
        return value / ref if ref else None


@dataclass(frozen=True, slots=True)
class _ComponentPlan:
    key: str
    comp: ComponentDef
    signals: tuple[str, ...]  # distinct signals of its metrics
    metrics: tuple[_MetricPlan, ...]
    weight_share: float  # of the model's total weight


class _Plan:
    """What `score` derives from a model alone, derived once per model (models are frozen)."""

    __slots__ = ("model", "components", "points", "hard_events", "bands", "shares")

    def __init__(self, model: ScoringModel):
        self.model = model
        full = model.total_weight
        comps = []
        for ckey, comp in model.components.items():
            metric_weight = sum(m.weight for m in comp.metrics.values())
            metrics = tuple(
                _MetricPlan.of(mkey, m, m.weight / metric_weight)
                for mkey, m in comp.metrics.items()
            )
            signals = tuple(dict.fromkeys(m.signal for m in comp.metrics.values()))
            comps.append(_ComponentPlan(ckey, comp, signals, metrics, comp.weight / full))
        self.components = tuple(comps)
        self.points = {k: m.points for c in model.components.values() for k, m in c.metrics.items()}
        self.hard_events = tuple((k, e.signal, e.within_days) for k, e in model.hard_events.items())
        self.bands: dict[tuple, Bands] = {}  # (segment, adjust) -> adjusted bands
        self.shares: dict[tuple, dict[str, float]] = {}  # present metrics -> their shares

    def shares_of(self, present: dict[str, dict[str, float]]) -> dict[str, float]:
        key = tuple(m for values in present.values() for m in values)
        hit = self.shares.get(key)
        if hit is None:
            if len(self.shares) >= 4096:  # bounded: a model has few presence patterns
                self.shares.clear()
            hit = self.shares[key] = _shares(self.model, present)
        return hit


_PLANS: dict[int, tuple[ScoringModel, _Plan]] = {}


def _plan(model: ScoringModel) -> _Plan:
    hit = _PLANS.get(id(model))
    if hit is not None and hit[0] is model:
        return hit[1]
    if len(_PLANS) >= 16:  # a long-lived process that reloads its model keeps a few
        _PLANS.clear()
    plan = _Plan(model)
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
    hard event makes the tier worse, which is announced at once."""
    current = prior.announced_tier
    if current is None:
        return raw, None, False
    if raw == current:
        return current, None, False
    if hard_event and TIERS.index(raw) > TIERS.index(current):
        return raw, None, True
    since = prior.pending_since if (prior.tier == raw and prior.pending_since) else today
    if (today - since).days >= hold_days:
        return raw, None, True
    return current, since, False


def _shares(model: ScoringModel, present: dict[str, dict[str, float]]) -> dict[str, float]:
    """metric key -> share of the total, renormalised over the metrics that have data."""
    comp_total = sum(model.components[c].weight for c in present)
    shares: dict[str, float] = {}
    for ckey, values in present.items():
        comp = model.components[ckey]
        metric_total = sum(comp.metrics[m].weight for m in values)
        for mkey in values:
            shares[mkey] = comp.weight / comp_total * comp.metrics[mkey].weight / metric_total
    capped = {
        m: d.max_share
        for c in present
        for m, d in model.components[c].metrics.items()
        if m in shares and d.max_share is not None and shares[m] > d.max_share
    }
    free = sum(v for k, v in shares.items() if k not in capped)
    if capped and free > 0:
        scale = (1 - sum(capped.values())) / free
        shares = {k: capped.get(k, v * scale) for k, v in shares.items()}
    return shares


def score(
    stats: Mapping[str, SignalStats],
    model: ScoringModel,
    *,
    account: AccountContext,
    prior: PriorState,
    now: datetime,
) -> ScoreResult | None:
    """Score one account at `now`; None when no metric has any data."""
    today = now.date()
    plan = _plan(model)
    values: dict[str, dict[str, float]] = {}
    ages: list[float | None] = []
    for cp in plan.components:
        age = None
        for sig in cp.signals:
            st = stats.get(sig)
            if st is not None and (age is None or st.days_since < age):
                age = st.days_since
        ages.append(age)
        got = {}
        for mp in cp.metrics:
            v = mp.value(stats, age is not None)
            if v is not None:
                got[mp.key] = v
        if got:
            values[cp.key] = got
    if not values:
        return None

    shares = plan.shares_of(values)
    components, total, confidence = [], 0.0, 0.0
    empty: dict[str, float] = {}
    for cp, age in zip(plan.components, ages, strict=True):
        got = values.get(cp.key, empty)
        stale = age is not None and age > cp.comp.stale_after_days
        metrics, comp_share, comp_points = [], 0.0, 0.0
        for mp in cp.metrics:
            v = got.get(mp.key)
            if v is None:
                metrics.append(
                    MetricResult(mp.key, mp.label, mp.signal, mp.format, None, None, 0.0)
                )
                continue
            s = interpolate(mp.points, v)
            share = shares[mp.key]
            comp_share += share
            comp_points += share * s
            confidence += cp.weight_share * mp.weight_share * (0.5 if stale else 1.0)
            metrics.append(MetricResult(mp.key, mp.label, mp.signal, mp.format, v, s, share))
        total += comp_points
        components.append(
            ComponentResult(
                cp.key,
                cp.comp.label,
                cp.comp.weight,
                comp_share,
                comp_points / comp_share if comp_share else None,
                age,
                stale,
                tuple(metrics),
            )
        )

    total = round(min(100.0, max(0.0, total)), 1)
    bands, stages = tier_bands(model, account, today)
    raw = tier_for(total, bands)
    hard = tuple(
        key
        for key, signal, within_days in plan.hard_events
        if (s := stats.get(signal)) and (s.latest or 0) > 0 and s.days_since <= within_days
    )
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
    comps = tuple(components)
    return ScoreResult(
        total=total,
        tier=raw,
        announced_tier=announced,
        pending_since=pending,
        tier_announced=changed,
        hard_events=hard,
        components=comps,
        confidence=round(confidence, 3),
        trend_30d=trend_30,
        trend_90d=trend_90,
        trend=trend,
        drivers=drivers(model, comps, prior, trend),
        bands=bands,
        stages=stages,
        model_version=model.version,
    )


def drivers(
    model: ScoringModel,
    components: tuple[ComponentResult, ...],
    prior: PriorState,
    trend: str,
    *,
    limit: int = 3,
) -> tuple[Driver, ...]:
    """Which metrics moved the score over 30 days (from what to what); without such movement,
    the metrics that cost it the most points."""
    points = _plan(model).points
    moved, costs = [], []
    for comp in components:
        for m in comp.metrics:
            if m.value is None or m.score is None:
                continue
            before = prior.metrics_30d_ago.get(m.key)
            if before is not None:
                impact = m.share * (m.score - interpolate(points[m.key], before))
                if abs(impact) >= 1.0:
                    moved.append(
                        Driver(m.key, m.signal, m.label, m.format, before, m.value, impact)
                    )
            cost = m.share * (m.score - 100)
            if cost <= -1.0:
                costs.append(Driver(m.key, m.signal, m.label, m.format, None, m.value, cost))
    if trend == "up":
        moved.sort(key=lambda d: -d.impact)
    else:
        moved.sort(key=lambda d: d.impact if trend == "down" else -abs(d.impact))
    if trend == "down":
        moved = [d for d in moved if d.impact < 0]
    elif trend == "up":
        moved = [d for d in moved if d.impact > 0]
    picked = moved[:limit]
    names = {d.metric for d in picked}
    costs.sort(key=lambda d: d.impact)
    picked += [d for d in costs if d.metric not in names][: limit - len(picked)]
    return tuple(picked)
