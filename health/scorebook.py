"""How a ScoreResult is kept in a Score row, and read back as history for the next score."""

from __future__ import annotations

from datetime import date, datetime

from health.models import Score
from health.scoring.engine import PriorState, ScoreResult


def metric_values(components: dict | None) -> dict[str, float]:
    return {
        key: values[0]
        for comp in (components or {}).values()
        for key, values in comp.get("metrics", {}).items()
        if values and values[0] is not None
    }


def score_row(
    result: ScoreResult, *, account_id: int, score_date: date, computed_at: datetime, reason: str
) -> dict:
    return {
        "account_id": account_id,
        "score_date": score_date,
        "computed_at": computed_at,
        "total": result.total,
        "tier": result.tier,
        "announced_tier": result.announced_tier,
        "pending_since": result.pending_since,
        "confidence": result.confidence,
        "trend_30d": result.trend_30d,
        "trend_90d": result.trend_90d,
        "components": result.breakdown,
        "drivers": [
            {
                "metric": d.metric,
                "label": d.label,
                "format": d.format,
                "from": _r(d.from_value, 4),
                "to": _r(d.to_value, 4),
                "impact": _r(d.impact),
            }
            for d in result.drivers
        ],
        "hard_events": list(result.hard_events),
        "reason": reason,
        "model_version": result.model_version,
    }


def prior_state(prev: Score | None, ago30: Score | None, ago90: Score | None) -> PriorState:
    return PriorState(
        tier=prev.tier if prev else None,
        announced_tier=prev.announced_tier if prev else None,
        pending_since=prev.pending_since if prev else None,
        total=prev.total if prev else None,
        total_30d_ago=ago30.total if ago30 else None,
        total_90d_ago=ago90.total if ago90 else None,
        metrics_30d_ago=metric_values(ago30.components) if ago30 else {},
    )


def _r(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)
