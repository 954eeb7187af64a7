"""A model's scores at each outcome's lead day, computed from stored observations without
storing anything: the shadow run of a candidate model and the features of a fit.

Each outcome is scored as a first score (no history: the raw tier, no hold), without the
renewal date (today's value, see `health.backfill`); current and candidate models are scored
the same way, so they compare like for like.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sqlmodel import Session

from health.backfill import plan_signals
from health.backtest import Case
from health.backtest_read import CHUNK, OutcomeRow
from health.repo import accounts_by_id, chunked
from health.score_writes import day_end
from health.scoring.engine import AccountContext, plan_of, tier_bands, tier_for
from health.scoring.model import ScoringModel
from health.scoring.timeline import epoch
from health.scoring.vector import compute_columns
from health.timeline_read import load_timeline


@dataclass
class LeadScores:
    """Per outcome that had any data at its lead day: the case as the model scores it and
    its metric scores (0-100, NaN where the metric had no data)."""

    cases: list[Case]
    rows: list[OutcomeRow]
    metric_keys: list[str]
    metric_scores: np.ndarray  # (cases, metrics)


def lead_scores(*, session: Session, model: ScoringModel, rows: Sequence[OutcomeRow]) -> LeadScores:
    plan = plan_of(model)
    cases, kept, scores = [], [], []
    by_account = sorted(rows, key=lambda r: (r.account_id, r.lead_day))
    accounts = sorted({r.account_id for r in rows})
    for part in chunked(accounts, CHUNK):
        lo, hi = part[0], part[-1]
        mine = [r for r in by_account if lo <= r.account_id <= hi]
        info = {
            a.id: a
            for a in accounts_by_id(
                session=session, ids=part, columns=("segment", "customer_since")
            )
        }
        timeline = load_timeline(
            session=session,
            ids=part,
            signals=plan_signals(model),
            first=day_end(min(r.lead_day for r in mine)),
            last=day_end(max(r.lead_day for r in mine)),
        )
        positions = np.searchsorted(np.asarray(part), [r.account_id for r in mine])
        instants = np.array([epoch(day_end(r.lead_day)) for r in mine], dtype=np.int64)
        x = timeline.columns(plan.columns, positions, instants)
        arrays = compute_columns(plan, x, [{}] * len(mine))
        present = arrays.present.tolist()
        totals = np.round(np.clip(arrays.totals, 0, 100), 1).tolist()
        for i, r in enumerate(mine):
            if not present[i]:
                continue
            a = info[r.account_id]
            context = AccountContext(
                name=r.name, segment=a.segment, customer_since=a.customer_since
            )
            bands, _ = tier_bands(model, context, r.lead_day)
            cases.append(
                Case(
                    account_id=r.account_id,
                    name=r.name,
                    segment=r.segment,
                    owner=r.owner,
                    kind=r.kind,
                    occurred_on=r.occurred_on,
                    score_date=r.lead_day,
                    total=totals[i],
                    tier=tier_for(totals[i], bands),
                    model_version=model.version,
                    confidence=float(arrays.confidence[i]),
                )
            )
            kept.append(r)
            scores.append(arrays.scores[:, i])
    matrix = np.array(scores).reshape(len(scores), len(plan.metric_keys))
    return LeadScores(cases, kept, list(plan.metric_keys), matrix)
