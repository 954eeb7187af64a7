"""A score in one plain sentence a CSM can repeat to the account's AE."""

from __future__ import annotations

from health.scoring.engine import Driver, ScoreResult
from health.scoring.model import INSUFFICIENT, TIER_LABELS, ScoringModel


def format_value(value: float, fmt: str) -> str:
    if fmt == "percent":
        return f"{value:.0%}"
    if fmt == "percent_points":
        return f"{value:.0f}%"
    if fmt == "days":
        return f"{value:.0f} day" + ("" if round(value) == 1 else "s")
    if fmt == "rating":
        return f"{value:.1f}/5"
    return f"{value:.1f}".removesuffix(".0")


def describe_driver(d: Driver) -> str:
    to = format_value(d.to_value, d.format)
    if d.from_value is None:
        return f"{d.label} is {to}"
    verb = "rose" if d.to_value > d.from_value else "fell"
    return f"{d.label} {verb} from {format_value(d.from_value, d.format)} to {to}"


def trend_phrase(result: ScoreResult) -> str:
    if result.trend_30d is None:
        return "first month of history"
    if result.trend == "flat":
        return "steady over 30 days"
    points = abs(round(result.trend_30d))
    return f"{'up' if result.trend == 'up' else 'down'} {points} points in 30 days"


def missing_data(model: ScoringModel, missing: list[str]) -> str:
    """What lacks data and which sources would fill it, for components `missing` (keys), e.g.
    "no fresh Product usage data (from product usage (USAGE_CSV, ...))"."""
    known = [k for k in missing if k in model.components]
    labels = " or ".join(model.components[k].label for k in known)
    sources = list(dict.fromkeys(src for k in known for src in model.sources_of(k)))
    return f"no fresh {labels} data (from {'; '.join(sources)})" if known else "no fresh data"


def explain(result: ScoreResult, *, name: str, model: ScoringModel) -> str:
    missing = [c.key for c in result.components if c.stale or c.score is None]
    reasons = [model.hard_events[e].label for e in result.hard_events]
    told = {model.hard_events[e].signal for e in result.hard_events}
    reasons += [describe_driver(d) for d in result.drivers if d.signal not in told]
    if result.announced_tier == INSUFFICIENT:  # what is known, then what is missing
        return (
            f"{name} has too little data for a tier ({result.confidence:.0%} confidence, "
            f"{model.tiers.min_confidence:.0%} needed; {result.total:.0f} on what there is): "
            f"{'; '.join([*reasons, missing_data(model, missing)])}."
        )
    # the tier people are shown (held `hold_days`), so the sentence never contradicts the
    # tier beside it; a tier not yet held is said as a trend
    head = f"{name} is {TIER_LABELS[result.announced_tier]} at {result.total:.0f}"
    head += f" ({trend_phrase(result)})"
    if result.tier != result.announced_tier:
        head += f", trending {TIER_LABELS[result.tier]}"
    sentence = f"{head}: {'; '.join(reasons)}." if reasons else f"{head}."
    if result.confidence < 0.7 and missing:
        sentence += f" Low confidence ({result.confidence:.0%}): {missing_data(model, missing)}."
    return sentence
