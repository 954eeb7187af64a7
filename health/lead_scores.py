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
from health.scoring.model import INSUFFICIENT, ScoringModel
from health.scoring.timeline import epoch
from health.scoring.vector import compute_columns
from health.timeline_read import load_timeline


@dataclass
class LeadScores:
    """Per outcome that had any data at its lead day: the case as the model scores it and
    its metric scores (0-100, NaN where the metric had no data). `x` keeps the statistics
    (`columns` x outcomes) so another model reading the same ones is scored without a read."""

    cases: list[Case]
    rows: list[OutcomeRow]
    metric_keys: list[str]
    metric_scores: np.ndarray  # (cases, metrics)
    columns: list[tuple[str, int]]
    x: np.ndarray
    contexts: list[AccountContext]

    def rescored(self, model: ScoringModel, keep: Sequence[int] | None = None) -> LeadScores:
        """The same outcomes (or those at positions `keep`) scored with `model`, from the
        statistics already read: its columns must be among these."""
        keep = list(range(len(self.rows))) if keep is None else list(keep)
        at = {c: k for k, c in enumerate(self.columns)}
        columns = plan_of(model).columns
        x = np.full((len(columns), len(keep)), np.nan)
        for k, c in enumerate(columns):
            if c in at:
                x[k] = self.x[at[c], keep]
        return _score(model, [self.rows[i] for i in keep], x, [self.contexts[i] for i in keep])


def lead_scores(*, session: Session, model: ScoringModel, rows: Sequence[OutcomeRow]) -> LeadScores:
    """`model`'s score of each outcome's account at its lead day, from its observations."""
    plan = plan_of(model)
    by_account = sorted(rows, key=lambda r: (r.account_id, r.lead_day))
    accounts = sorted({r.account_id for r in rows})
    ordered, blocks, contexts = [], [], []
    at = 0
    for part in chunked(accounts, CHUNK):
        mine = []
        while at < len(by_account) and by_account[at].account_id <= part[-1]:
            mine.append(by_account[at])
            at += 1
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
        blocks.append(timeline.columns(plan.columns, positions, instants))
        ordered += mine
        contexts += [
            AccountContext(
                name=r.name,
                segment=info[r.account_id].segment,
                customer_since=info[r.account_id].customer_since,
            )
            for r in mine
        ]
    x = np.concatenate(blocks, axis=1) if blocks else np.empty((len(plan.columns), 0))
    return _score(model, ordered, x, contexts)


def _score(
    model: ScoringModel, rows: list[OutcomeRow], x: np.ndarray, contexts: list[AccountContext]
) -> LeadScores:
    """Score each outcome as a first score (raw tier, no history); drop those without data."""
    plan = plan_of(model)
    arrays = compute_columns(plan, x, [{}] * len(rows))
    present = arrays.present.tolist()
    totals = np.round(np.clip(arrays.totals, 0, 100), 1).tolist()
    keep = [i for i in range(len(rows)) if present[i]]
    cases = []
    for i in keep:
        r = rows[i]
        bands, _ = tier_bands(model, contexts[i], r.lead_day)
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
                tier=(
                    tier_for(totals[i], bands)
                    if arrays.confidence[i] >= model.tiers.min_confidence
                    else INSUFFICIENT  # as the product shows it (scoring.engine)
                ),
                model_version=model.version,
                confidence=round(float(arrays.confidence[i]), 3),
            )
        )
    return LeadScores(
        cases=cases,
        rows=[rows[i] for i in keep],
        metric_keys=list(plan.metric_keys),
        metric_scores=arrays.scores[:, keep].T.reshape(len(keep), len(plan.metric_keys)),
        columns=list(plan.columns),
        x=x[:, keep],
        contexts=[contexts[i] for i in keep],
    )
