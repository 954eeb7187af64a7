"""The scoring arithmetic for many accounts at once: statistics in, arrays out.

A model is compiled once into a `Plan` (which statistics are read, weights, points, caps).
`compute` then lays a batch's statistics out as columns and works out, for every account
and metric at once (numpy, one row per metric, one column per account):
metric values, their 0-100 scores, renormalised shares, component scores and ages,
staleness, confidence, totals, hard events and how far each metric moved in 30 days.
`health.scoring.engine` turns the arrays into one explained result per account.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from health.scoring.model import ScoringModel
from health.scoring.stats import SignalStats

EVENT_STATS = ("sum_30d", "sum_90d")  # an event that never happened counts as zero
# a ratio to a baseline of 0: no use now is 0, any use now is "grew from nothing", this much
GREW_FROM_NOTHING = 10.0
NAN = float("nan")
_FIELD = {name: i for i, name in enumerate(SignalStats._fields)}


def interpolate(points: Sequence[tuple[float, float]], x):
    """Piecewise-linear between the [x, score] points, flat beyond the ends (NaN stays NaN)."""
    return np.interp(x, [p for p, _ in points], [y for _, y in points])


@dataclass(frozen=True, slots=True)
class MetricOp:
    """Where one metric's value comes from, as column numbers of the statistics table."""

    value: int
    seen: int  # the days_since column of its signal: present when the signal is
    event: bool
    ratio: int | None  # the column it is divided by
    component: int
    baseline: bool = False  # divided by the baseline: a baseline of 0 still tells something


class Plan:
    """A model compiled for `compute` (models are frozen: compiled once per model)."""

    def __init__(self, model: ScoringModel):
        self.model = model
        self.columns: list[tuple[str, int]] = []  # (signal, SignalStats field) per column
        index: dict[tuple[str, int], int] = {}

        def col(signal: str, stat: str) -> int:
            key = (signal, _FIELD[stat])
            if key not in index:
                index[key] = len(self.columns)
                self.columns.append(key)
            return index[key]

        full = model.total_weight
        self.metric_keys: list[str] = []
        self.metrics = []  # MetricDef, in component order
        self.ops: list[MetricOp] = []
        self.component_keys = list(model.components)
        self.component_signals: list[list[int]] = []  # days_since columns per component
        comp_w, metric_w, cw_share, mw_share, caps = [], [], [], [], []
        for c, comp in enumerate(model.components.values()):
            comp_w.append(comp.weight)
            cw_share.append(comp.weight / full)
            total = sum(m.weight for m in comp.metrics.values())
            signals = dict.fromkeys(m.signal for m in comp.metrics.values())
            self.component_signals.append([col(s, "days_since") for s in signals])
            for key, m in comp.metrics.items():
                ratio = None
                if m.ratio_to == "baseline":
                    ratio = col(m.signal, "baseline")
                elif m.ratio_to:
                    signal, _, stat = m.ratio_to.partition(".")
                    ratio = col(signal, stat)
                op = MetricOp(
                    col(m.signal, m.stat),
                    col(m.signal, "days_since"),
                    m.stat in EVENT_STATS,
                    ratio,
                    c,
                    m.ratio_to == "baseline",
                )
                self.metric_keys.append(key)
                self.metrics.append(m)
                self.ops.append(op)
                metric_w.append(m.weight)
                mw_share.append(m.weight / total)
                caps.append(NAN if m.max_share is None else m.max_share)
        self.hard_events = [
            (key, col(e.signal, "latest"), col(e.signal, "days_since"), e.within_days)
            for key, e in model.hard_events.items()
        ]
        self.metric_index = {k: i for i, k in enumerate(self.metric_keys)}
        # per component: (row, key, MetricDef) of its metrics
        self.component_metrics: list[list[tuple[int, str, object]]] = [
            [] for _ in self.component_keys
        ]
        for j, (key, m, op) in enumerate(
            zip(self.metric_keys, self.metrics, self.ops, strict=True)
        ):
            self.component_metrics[op.component].append((j, key, m))
        self.signals = list(dict.fromkeys(signal for signal, _ in self.columns))
        m_comp = np.array([op.component for op in self.ops])
        self.m_comp = m_comp
        self.comp_w = np.array(comp_w)
        self.metric_w = np.array(metric_w)
        # each metric's full-data share of the total: its part of the confidence
        self.full_share = np.array(cw_share)[m_comp] * np.array(mw_share)
        self.caps = np.array(caps)
        self.capped_any = bool(np.isfinite(self.caps).any())
        self.stale_after = np.array([c.stale_after_days for c in model.components.values()])
        self.bands: dict[tuple, object] = {}  # (segment, adjust) -> adjusted bands (engine's)


@dataclass(slots=True)
class Arrays:
    """What `compute` works out; rows are metrics or components, columns accounts."""

    present: np.ndarray  # (accounts,) any metric has data
    values: np.ndarray  # (metrics, accounts) NaN where missing
    scores: np.ndarray  # (metrics, accounts) 0-100, NaN where missing
    shares: np.ndarray  # (metrics, accounts) of the total, 0 where missing
    comp_shares: np.ndarray  # (components, accounts)
    comp_scores: np.ndarray  # (components, accounts) NaN where no metric has data
    ages: np.ndarray  # (components, accounts) days since the newest observation, NaN if none
    stale: np.ndarray  # (components, accounts) bool
    totals: np.ndarray  # (accounts,) before clamping and rounding
    confidence: np.ndarray  # (accounts,)
    hard: list[np.ndarray]  # per hard event: (accounts,) bool
    before: np.ndarray  # (metrics, accounts) value 30 days ago, NaN where unknown
    moved: np.ndarray  # (metrics, accounts) points of the total gained since then


def fill(columns: Sequence[tuple[str, int]], stats: Sequence[Mapping[str, SignalStats]]):
    """Statistics per account laid out as `columns` ((signal, SignalStats field) rows, one
    column per account, NaN where missing)."""
    n = len(stats)
    cols = [[NAN] * n for _ in columns]
    slots: dict[str, list[tuple[int, int]]] = {}
    for k, (signal, f) in enumerate(columns):
        slots.setdefault(signal, []).append((k, f))
    for i, by_signal in enumerate(stats):
        for signal, s in by_signal.items():
            for k, f in slots.get(signal, ()):
                v = s[f]
                if v is not None:
                    cols[k][i] = v
    return np.array(cols, dtype=float).reshape(len(columns), n)


def scatter(
    columns: Sequence[tuple[str, int]], signals: Sequence[str], ids: Sequence[int], table
) -> np.ndarray:
    """The same layout as `fill`, from a table with one row per (account, signal): account id,
    the signal's position in `signals`, then the SignalStats fields (NaN where None). Every
    account id of the table is one of `ids` (ascending)."""
    x = np.full((len(columns), len(ids)), NAN)
    table = np.asarray(table, dtype=float).reshape(-1, 2 + len(SignalStats._fields))
    where = np.searchsorted(np.asarray(ids), table[:, 0])
    code = table[:, 1]
    rows_of: dict[str, np.ndarray] = {}
    for k, (signal, f) in enumerate(columns):
        rows = rows_of.get(signal)
        if rows is None:
            rows = rows_of[signal] = np.flatnonzero(code == signals.index(signal))
        x[k, where[rows]] = table[rows, 2 + f]
    return x


def compute(
    plan: Plan,
    stats: Sequence[Mapping[str, SignalStats]],
    before: Sequence[Mapping[str, float]],
) -> Arrays:
    """The arithmetic of scoring for every account of the batch at once. `before` holds each
    account's metric values of 30 days ago (for the movement of each metric)."""
    return compute_columns(plan, fill(plan.columns, stats), before)


def compute_columns(plan: Plan, x: np.ndarray, before: Sequence[Mapping[str, float]]) -> Arrays:
    """`compute`, from statistics already laid out as `plan.columns` (see `fill`)."""
    n = x.shape[1]
    ages = np.array([np.fmin.reduce(x[c], axis=0) for c in plan.component_signals])
    ages = ages.reshape(len(plan.component_signals), n)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        values = _metric_values(plan, x, ~np.isnan(ages))
        present = ~np.isnan(values)
        scores = _interpolated(plan, values)
        shares = _shares(plan, present)
        contrib = np.where(present, shares * scores, 0.0)
        comp_shares = _by_component(plan, shares)
        comp_points = _by_component(plan, contrib)
        comp_scores = np.where(comp_shares > 0, comp_points / comp_shares, NAN)
        stale = ages > plan.stale_after[:, None]
        weight = np.where(stale[plan.m_comp], 0.5, 1.0) * plan.full_share[:, None]
        confidence = _total(weight * present)
        hard = [
            (x[latest] > 0) & (x[days] <= within) for _, latest, days, within in plan.hard_events
        ]
        b_arr = fill_metrics(plan, before)
        moved = shares * (scores - _interpolated(plan, b_arr))
    return Arrays(
        present=present.any(axis=0),
        values=values,
        scores=scores,
        shares=shares,
        comp_shares=comp_shares,
        comp_scores=comp_scores,
        ages=ages,
        stale=stale,
        totals=_total(comp_points),
        confidence=confidence,
        hard=hard,
        before=b_arr,
        moved=moved,
    )


def _metric_values(plan: Plan, x: np.ndarray, comp_seen: np.ndarray) -> np.ndarray:
    """(metrics, accounts): each metric's value, NaN where it has no data."""
    values = np.empty((len(plan.ops), x.shape[1]))
    for j, op in enumerate(plan.ops):
        v = x[op.value]
        if op.event:  # a source that reports no such event: zero of them
            v = np.where(np.isnan(v), 0.0, v)
        if op.ratio is not None:
            ref = x[op.ratio]
            ratio = np.where(np.isfinite(ref) & (ref != 0), v / ref, NAN)
            if op.baseline:  # nothing then: nothing now reads 0, something now grew from it
                grew = np.where(v > 0, GREW_FROM_NOTHING, np.where(v == 0, 0.0, NAN))
                ratio = np.where(ref == 0, grew, ratio)
            v = np.minimum(ratio, GREW_FROM_NOTHING) if op.baseline else ratio
        missing = 0.0 if op.event else NAN  # the signal never observed, its source seen
        values[j] = np.where(
            ~np.isnan(x[op.seen]), v, np.where(comp_seen[op.component], missing, NAN)
        )
    return values


def _interpolated(plan: Plan, values: np.ndarray) -> np.ndarray:
    """Each metric's values mapped to 0-100 through its points (NaN stays NaN)."""
    out = np.empty_like(values)
    for j, m in enumerate(plan.metrics):
        out[j] = interpolate(m.points, values[j])
    return out


def fill_metrics(plan: Plan, by_metric: Sequence[Mapping[str, float]]) -> np.ndarray:
    """(metrics, accounts) from per-account {metric key: value}, NaN where absent."""
    rows = [[NAN] * len(by_metric) for _ in plan.ops]
    index = plan.metric_index
    for i, values in enumerate(by_metric):
        for key, v in values.items():
            j = index.get(key)
            if j is not None and v is not None:
                rows[j][i] = v
    return np.array(rows, dtype=float).reshape(len(plan.ops), len(by_metric))


def _total(rows: np.ndarray) -> np.ndarray:
    """Column sums, adding the rows one after another: numpy's own sum adds in another order
    when a batch has one account, and an account's score must not depend on its batch."""
    out = np.zeros(rows.shape[1:])
    for row in rows:
        out += row
    return out


def _by_component(plan: Plan, rows: np.ndarray) -> np.ndarray:
    """(components, accounts): the sums of each component's metric rows, in metric order."""
    out = np.zeros((len(plan.component_keys), rows.shape[1]))
    for row, c in zip(rows, plan.m_comp.tolist(), strict=True):
        out[c] += row
    return out


def _shares(plan: Plan, present: np.ndarray) -> np.ndarray:
    """Each metric's share of the total, renormalised over the metrics that have data;
    a metric with `max_share` is held to it and the others scaled up to fill the rest."""
    p = present.astype(float)
    metric_total = _by_component(plan, p * plan.metric_w[:, None])
    comp_total = _total(plan.comp_w[:, None] * (metric_total > 0))  # (accounts,)
    shares = (plan.comp_w[plan.m_comp][:, None] / comp_total) * plan.metric_w[:, None]
    shares = np.where(present, shares / metric_total[plan.m_comp], 0.0)
    if plan.capped_any:
        capped = present & (shares > plan.caps[:, None])
        if capped.any():
            free = _total(np.where(capped, 0.0, shares))
            held = _total(np.where(capped, plan.caps[:, None], 0.0))
            scale = (1 - held) / free
            fix = capped.any(axis=0) & (free > 0)
            shares = np.where(fix, np.where(capped, plan.caps[:, None], shares * scale), shares)
    return shares
