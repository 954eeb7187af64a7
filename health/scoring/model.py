"""The scoring model: loaded from YAML, validated, immutable.

Invalid files fail at load with the file, the key and what is wrong.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from health.scoring.stats import Needs

Stat = Literal[
    "latest",
    "avg_7d",
    "avg_30d",
    "avg_90d",
    "sum_30d",
    "sum_90d",
    "baseline",
    "days_since",
    "days_since_active",
    "active_week_share",
]
AGE_STATS = ("days_since", "days_since_active")  # more of them is older, not more
STATS: tuple[str, ...] = Stat.__args__  # type: ignore[attr-defined]
TIERS = ("healthy", "monitor", "at_risk", "critical")  # best first
# below the model's min_confidence no tier is claimed: this one is off the scale above
INSUFFICIENT = "insufficient"
ALL_TIERS = (*TIERS, INSUFFICIENT)  # every tier a score can carry, in the order shown
TIER_LABELS = {
    "healthy": "Healthy",
    "monitor": "Monitor",
    "at_risk": "At risk",
    "critical": "Critical",
    INSUFFICIENT: "Insufficient data",
}


class ModelError(ValueError):
    """The model file is invalid: says which file, which key, and what is wrong."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SignalDef(_Frozen):
    direction: Literal["up", "down", "none"]
    unit: str = ""
    description: str = ""
    source: str = ""  # where it comes from: named when its absence leaves too little data


class MetricDef(_Frozen):
    label: str
    signal: str
    stat: Stat
    ratio_to: str | None = None  # "baseline" or "<signal>.<stat>"
    format: Literal["percent", "number", "days", "rating", "percent_points"] = "number"
    points: tuple[tuple[float, float], ...]
    weight: float = Field(gt=0)
    max_share: float | None = Field(default=None, gt=0, lt=1)

    @field_validator("points")
    @classmethod
    def _points(cls, pts: tuple[tuple[float, float], ...]) -> tuple[tuple[float, float], ...]:
        if len(pts) < 2:
            raise ValueError("needs at least two [x, score] points")
        xs = [x for x, _ in pts]
        if any(b <= a for a, b in zip(xs, xs[1:], strict=False)):
            raise ValueError(f"x values must be strictly ascending, got {xs}")
        ys = [y for _, y in pts]
        if any(not 0 <= y <= 100 for y in ys):
            raise ValueError(f"scores must lie in 0..100, got {ys}")
        rising = all(b >= a for a, b in zip(ys, ys[1:], strict=False))
        falling = all(b <= a for a, b in zip(ys, ys[1:], strict=False))
        if not (rising or falling):
            raise ValueError(f"scores must only rise or only fall, got {ys}")
        return pts

    @field_validator("ratio_to")
    @classmethod
    def _ratio_to(cls, ref: str | None) -> str | None:
        if ref is None or ref == "baseline":
            return ref
        _, _, stat = ref.partition(".")
        if stat not in STATS:
            raise ValueError(f"must be 'baseline' or '<signal>.<stat>' with stat in {STATS}")
        return ref

    @property
    def rising(self) -> bool:
        return self.points[-1][1] >= self.points[0][1]


class ComponentDef(_Frozen):
    label: str
    weight: float = Field(gt=0)
    stale_after_days: int = Field(default=7, gt=0)
    metrics: dict[str, MetricDef] = Field(min_length=1)


class Bands(_Frozen):
    healthy: float
    monitor: float
    at_risk: float

    @model_validator(mode="after")
    def _ordered(self) -> Bands:
        if not 0 <= self.at_risk < self.monitor < self.healthy <= 100:
            raise ValueError("bands must satisfy 0 <= at_risk < monitor < healthy <= 100")
        return self


class LifecycleRule(_Frozen):
    days: int = Field(gt=0)
    adjust: float


class TierRules(_Frozen):
    bands: Bands
    segments: dict[Literal["enterprise", "mid_market", "smb"], Bands] = {}
    lifecycle: dict[Literal["onboarding", "renewal_window"], LifecycleRule] = {}
    hold_days: int = Field(default=7, ge=0)
    min_confidence: float = Field(default=0.5, ge=0, le=1)  # below: insufficient


class HardEventDef(_Frozen):
    signal: str
    within_days: int = Field(gt=0)
    label: str


class TrendRules(_Frozen):
    flat_points: float = Field(default=5, ge=0)


class ScoringModel(_Frozen):
    model_config = ConfigDict(frozen=True, extra="forbid", coerce_numbers_to_str=True)

    version: str
    signals: dict[str, SignalDef]
    components: dict[str, ComponentDef]
    tiers: TierRules
    hard_events: dict[str, HardEventDef] = {}
    trend: TrendRules = TrendRules()

    @model_validator(mode="after")
    def _references(self) -> ScoringModel:
        for ckey, comp in self.components.items():
            for mkey, metric in comp.metrics.items():
                where = f"components.{ckey}.metrics.{mkey}"
                if metric.signal not in self.signals:
                    raise ValueError(f"{where}.signal: unknown signal {metric.signal!r}")
                direction = self.signals[metric.signal].direction
                if direction != "none":
                    # more of a good signal (or a more recent one) must never score lower
                    good_when_rising = (direction == "up") != (metric.stat in AGE_STATS)
                    if metric.rising != good_when_rising:
                        raise ValueError(
                            f"{where}.points: scores {'rise' if metric.rising else 'fall'} as "
                            f"{metric.signal} ({direction} is healthier) gets "
                            f"{'older' if metric.stat in AGE_STATS else 'larger'}"
                        )
                ref = metric.ratio_to
                if ref and ref != "baseline" and ref.partition(".")[0] not in self.signals:
                    raise ValueError(f"{where}.ratio_to: unknown signal in {ref!r}")
        for key, event in self.hard_events.items():
            if event.signal not in self.signals:
                raise ValueError(f"hard_events.{key}.signal: unknown signal {event.signal!r}")
        return self

    @property
    def total_weight(self) -> float:
        return sum(c.weight for c in self.components.values())

    def needs(self) -> Needs:
        """The statistics scoring with this model reads (what the SQL pass must compute)."""
        pairs = []
        for c in self.components.values():
            for m in c.metrics.values():
                pairs.append((m.signal, m.stat))
                if m.ratio_to == "baseline":
                    pairs.append((m.signal, "baseline"))
                elif m.ratio_to:
                    signal, _, stat = m.ratio_to.partition(".")
                    pairs.append((signal, stat))
        pairs += [(e.signal, "latest") for e in self.hard_events.values()]
        return Needs.of(pairs)

    def with_min_confidence(self, min_confidence: float | None) -> ScoringModel:
        """This model with another confidence floor (None: as it is)."""
        if min_confidence is None:
            return self
        tiers = TierRules.model_validate(
            {**self.tiers.model_dump(), "min_confidence": min_confidence}
        )
        return self.model_copy(update={"tiers": tiers})

    def sources_of(self, component: str) -> list[str]:
        """Where a component's signals come from (the signals' `source`, else their key)."""
        metrics = self.components[component].metrics.values()
        return list(dict.fromkeys(self.signals[m.signal].source or m.signal for m in metrics))

    def used_signals(self) -> set[str]:
        used = {m.signal for c in self.components.values() for m in c.metrics.values()}
        used |= {
            m.ratio_to.partition(".")[0]
            for c in self.components.values()
            for m in c.metrics.values()
            if m.ratio_to and m.ratio_to != "baseline"
        }
        return used | {e.signal for e in self.hard_events.values()}


def parse_model(data: object, *, source: str = "<model>") -> ScoringModel:
    try:
        return ScoringModel.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ModelError(f"{source}: {key}: {err['msg']}{more}") from None


def load_model(path: str | Path, *, min_confidence: float | None = None) -> ScoringModel:
    """The model file at `path`; `min_confidence` (HEALTHBOT_MIN_CONFIDENCE) overrides its
    `tiers.min_confidence`."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ModelError(f"{path}: cannot read the scoring model: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ModelError(f"{path}: not valid YAML: {exc}") from None
    model = parse_model(data, source=str(path))
    try:
        return model.with_min_confidence(min_confidence)
    except ValidationError:
        raise ModelError(
            f"HEALTHBOT_MIN_CONFIDENCE: must lie in 0..1 (a share), got {min_confidence}"
        ) from None
