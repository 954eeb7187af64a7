"""Calibration use-cases: `backtest --shadow` (a candidate model scored over history next to
the current one, nothing stored) and `backtest --fit` (weights learned from outcomes, the
proposal and the current model compared on held-out time, the "A/B on history" of domain
article 003)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import numpy as np
import yaml
from sqlmodel import Session

from health.backtest import Case, evaluate, false_negatives, grouped, retention_by_band
from health.backtest_read import outcomes
from health.fit import fit_weights, proposed_model, time_split
from health.lead_scores import lead_scores
from health.scoring.engine import plan_of
from health.scoring.model import INSUFFICIENT, ScoringModel


def summary(cases: Sequence[Case], model: ScoringModel) -> dict:
    """The metrics of one model's cases; below its confidence floor ("insufficient data")
    counted apart, as the stored backtest does."""
    scored = [c for c in cases if c.tier != INSUFFICIENT]
    return {
        "model_version": model.version,
        **evaluate(scored).as_dict(),
        "bands": retention_by_band(scored),
        "segments": grouped(scored, lambda c: c.segment),
        "false_negatives": false_negatives(scored),
        "insufficient_data": len(cases) - len(scored),
    }


def shadow_report(
    *,
    session: Session,
    current: ScoringModel,
    candidate: ScoringModel,
    lead_days: int = 90,
    since: date | None = None,
    until: date | None = None,
    segment: str | None = None,
) -> dict:
    """Both models scored from the observations at each outcome's lead day, side by side."""
    rows = outcomes(session=session, lead_days=lead_days, since=since, until=until, segment=segment)
    a = lead_scores(session=session, model=current, rows=rows)
    b = lead_scores(session=session, model=candidate, rows=rows)
    return {
        "lead_days": lead_days,
        "outcomes_in_range": len(rows),
        "current": summary(a.cases, current),
        "candidate": summary(b.cases, candidate),
    }


def shares(model: ScoringModel) -> dict[str, float]:
    """Each metric's share of 100 when every metric has data."""
    plan = plan_of(model)
    return dict(zip(plan.metric_keys, (100 * plan.full_share).round(2).tolist(), strict=True))


def fit_report(
    *,
    session: Session,
    model: ScoringModel,
    lead_days: int = 90,
    since: date | None = None,
    until: date | None = None,
    segment: str | None = None,
) -> tuple[dict, ScoringModel | None]:
    """Fit weights on the earlier outcomes, then score the held-out later ones with the
    current and the proposed model. Returns the report and the proposal (None, with a
    `problem`, when the outcomes cannot support a fit)."""
    rows = outcomes(session=session, lead_days=lead_days, since=since, until=until, segment=segment)
    scored = lead_scores(session=session, model=model, rows=rows)
    out: dict = {"lead_days": lead_days, "outcomes": len(scored.cases), "problem": None}
    dates = [c.occurred_on for c in scored.cases]
    split = time_split(dates, lead_days)
    y = np.array([c.churned for c in scored.cases], dtype=float)
    if split is None or len(set(y[split.train].tolist())) < 2:
        out["problem"] = (
            f"{len(scored.cases)} outcomes with data at lead time do not leave both churns "
            f"and renewals to learn from before a held-out period {lead_days} days later: "
            "import or backfill a longer history"
        )
        return out, None
    train = split.train
    before = shares(model)
    fit = fit_weights(
        scored.metric_scores[train],
        y[train],
        [dates[i] for i in train],
        scored.metric_keys,
        lead_days=lead_days,
        current=[before[k] for k in scored.metric_keys],
    )
    proposal = proposed_model(
        model, fit.weights, version=f"{model.version}-fit-{split.cutoff.isoformat()}"
    )
    held = scored.rescored(proposal, split.held_out)  # the proposal reads a subset
    out.update(
        {
            "train": len(train),
            "held_out": len(split.held_out),
            "cutoff": split.cutoff.isoformat(),
            "penalty": fit.penalty,
            "cv_auc": None if fit.cv_auc is None else round(fit.cv_auc, 3),
            "weights": {
                k: {
                    "component": ckey,
                    "current": before.get(k, 0.0),
                    "proposed": fit.weights.get(k, 0.0),
                }
                for ckey, comp in model.components.items()
                for k in comp.metrics
            },
            "components": {
                k: {
                    "current": model.components[k].weight,
                    "proposed": proposal.components[k].weight if k in proposal.components else 0,
                }
                for k in model.components
            },
            "current": summary([scored.cases[i] for i in split.held_out], model),
            "proposed": summary(held.cases, proposal),
        }
    )
    return out, proposal


def model_yaml(model: ScoringModel, *, note: str) -> str:
    """The model as a YAML file an admin can read, review and point HEALTHBOT_MODEL at."""
    head = "".join(f"# {line}\n" for line in note.splitlines())
    body = yaml.safe_dump(model.model_dump(mode="json"), sort_keys=False, width=100)
    return head + body
