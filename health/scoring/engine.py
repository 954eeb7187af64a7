"""The scoring engine: statistics in, a score with its breakdown out. Pure: no DB, no clock."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime

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


@dataclass(frozen=True, slots=True)
class MetricResult:
    key: str
    label: str
    signal: str
    format: str
    value: float | None
    score: float | None
    share: float  # of the total score; 0 when missing


@dataclass(frozen=True, slots=True)
class ComponentResult:
    key: str
    label: str
    weight: float
    share: float
    score: float | None
    age_days: float | None  # age of the newest observation among its signals
    stale: bool
    metrics: tuple[MetricResult, ...]


@dataclass(frozen=True, slots=True)
class Driver:
    metric: str
    signal: str
    label: str
    format: str
    from_value: float | None
    to_value: float
    impact: float  # points of the total this metric moved (or costs, without history)


@dataclass(frozen=True, slots=True)
class ScoreResult:
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


def metric_value(
    metric: MetricDef, stats: Mapping[str, SignalStats], now: datetime, *, source_seen: bool
) -> float | None:
    s = stats.get(metric.signal)
    if s is None:
        # An event that never happened is a zero, as long as its source reports at all.
        return 0.0 if metric.stat in EVENT_STATS and source_seen else None
    value = s.get(metric.stat, now)
    if value is None and metric.stat in EVENT_STATS:
        value = 0.0
    if value is None or metric.ratio_to is None:
        return value
    if metric.ratio_to == "baseline":
        ref = s.baseline
    else:
        signal, _, stat = metric.ratio_to.partition(".")
        other = stats.get(signal)
        ref = other.get(stat, now) if other else None
    return value / ref if ref else None


@dataclass(frozen=True, slots=True)
class _MetricPlan:
    key: str
    metric: MetricDef
    weight_share: float  # of its component's metric weight


@dataclass(frozen=True, slots=True)
class _ComponentPlan:
    key: str
    comp: ComponentDef
    signals: tuple[str, ...]  # distinct signals of its metrics
    metrics: tuple[_MetricPlan, ...]
    weight_share: float  # of the model's total weight


class _Plan:
    """What `score` derives from a model alone, derived once per model (models are frozen)."""

    __slots__ = ("components", "points", "hard_events", "bands")

    def __init__(self, model: ScoringModel):
        full = model.total_weight
        comps = []
        for ckey, comp in model.components.items():
            metric_weight = sum(m.weight for m in comp.metrics.values())
            metrics = tuple(
                _MetricPlan(mkey, m, m.weight / metric_weight) for mkey, m in comp.metrics.items()
            )
            signals = tuple(dict.fromkeys(m.signal for m in comp.metrics.values()))
            comps.append(_ComponentPlan(ckey, comp, signals, metrics, comp.weight / full))
        self.components = tuple(comps)
        self.points = {k: m.points for c in model.components.values() for k, m in c.metrics.items()}
        self.hard_events = tuple((k, e.signal, e.within_days) for k, e in model.hard_events.items())
        self.bands: dict[tuple, Bands] = {}  # (segment, adjust) -> adjusted bands


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
    ages: dict[str, float | None] = {}
    for cp in plan.components:
        seen = [stats[s].days_since(now) for s in cp.signals if s in stats]
        ages[cp.key] = min(seen) if seen else None
        got = {}
        for mp in cp.metrics:
            v = metric_value(mp.metric, stats, now, source_seen=bool(seen))
            if v is not None:
                got[mp.key] = v
        if got:
            values[cp.key] = got
    if not values:
        return None

    shares = _shares(model, values)
    components, total, confidence = [], 0.0, 0.0
    empty: dict[str, float] = {}
    for cp in plan.components:
        ckey, comp = cp.key, cp.comp
        got = values.get(ckey, empty)
        age = ages[ckey]
        stale = age is not None and age > comp.stale_after_days
        metrics, comp_share, comp_points = [], 0.0, 0.0
        for mp in cp.metrics:
            mkey, metric = mp.key, mp.metric
            v = got.get(mkey)
            s = None if v is None else interpolate(metric.points, v)
            share = shares.get(mkey, 0.0)
            if s is not None:
                comp_share += share
                comp_points += share * s
                confidence += cp.weight_share * mp.weight_share * (0.5 if stale else 1.0)
            metrics.append(
                MetricResult(mkey, metric.label, metric.signal, metric.format, v, s, share)
            )
        total += comp_points
        components.append(
            ComponentResult(
                ckey,
                comp.label,
                comp.weight,
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
        if (s := stats.get(signal)) and s.latest > 0 and s.days_since(now) <= within_days
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
