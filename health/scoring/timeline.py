"""Statistics of many accounts at many instants at once, from their observations in memory.

The same definitions as `health.scoring.stats` (and `health.stats_sql`): windows are
[now - N days, now), the newest value is the largest one observed at the newest instant
within LOOKBACK_DAYS, the baseline is the mean of days 180..90 back (or of everything so far
for a younger series). A backfill reads a batch's observations once and asks for every
(account, scoring day) of its grid; a backtest asks for one instant per outcome. Pure numpy:
no database, no clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np

from health.scoring.stats import (
    ACTIVE_WEEKS,
    DAY,
    LOOKBACK_DAYS,
    WEEK,
    WINDOW_DAYS,
    SignalStats,
)

_FIELD = {name: i for i, name in enumerate(SignalStats._fields)}


class Timeline:
    """Observations of a set of accounts (positions 0..n-1) and signals, sorted per series."""

    def __init__(
        self,
        signals: Sequence[str],
        accounts: np.ndarray,
        signal_codes: np.ndarray,
        times: np.ndarray,
        values: np.ndarray,
    ):
        """`accounts`: each observation's account position; `signal_codes`: its position in
        `signals`; `times`: epoch seconds; `values`: the observed values."""
        self.signals = list(signals)
        n_sig = max(1, len(self.signals))
        series = np.asarray(accounts, dtype=np.int64) * n_sig + np.asarray(signal_codes, np.int64)
        times = np.asarray(times, dtype=np.int64)
        values = np.asarray(values, dtype=float)
        self.t0 = int(times.min()) if len(times) else 0
        self.span = int(times.max() - self.t0 + 1) if len(times) else 1
        order = np.lexsort((values, times, series))  # the largest value last at one instant
        self.series, self.times, self.values = series[order], times[order], values[order]
        self.prefix = np.concatenate(([0.0], np.cumsum(self.values)))
        self.n_sig = n_sig
        used = self.values > 0  # the observations above 0: activity statistics
        self.used_series, self.used_times = self.series[used], self.times[used]

    def _keys(self, series: np.ndarray, at: np.ndarray) -> np.ndarray:
        """Composite sort keys (series, seconds since t0), clamped into the series' range."""
        return series * (self.span + 1) + np.clip(at - self.t0, 0, self.span)

    def columns(
        self, columns: Sequence[tuple[str, int]], accounts: np.ndarray, instants: np.ndarray
    ) -> np.ndarray:
        """The statistics laid out as `columns` ((signal, SignalStats field) rows, as
        `health.scoring.engine.plan_of(model).columns`), one column per query: account
        position `accounts[q]` at epoch second `instants[q]`; NaN where missing."""
        accounts = np.asarray(accounts, dtype=np.int64)
        instants = np.asarray(instants, dtype=np.int64)
        x = np.full((len(columns), len(accounts)), np.nan)
        keys = self.series * (self.span + 1) + (self.times - self.t0)
        by_signal: dict[str, dict[int, np.ndarray]] = {}
        for signal, _ in columns:
            if signal in by_signal:
                continue
            if signal not in self.signals or not len(keys):
                by_signal[signal] = {}
                continue
            series = accounts * self.n_sig + self.signals.index(signal)
            by_signal[signal] = self._stats(keys, series, instants)
        for k, (signal, f) in enumerate(columns):
            got = by_signal[signal].get(f)
            if got is not None:
                x[k] = got
        return x

    def _stats(self, keys: np.ndarray, series: np.ndarray, t: np.ndarray) -> dict[int, np.ndarray]:
        end = np.searchsorted(keys, self._keys(series, t), side="left")

        def window(days: int) -> tuple[np.ndarray, np.ndarray]:
            lo = np.searchsorted(keys, self._keys(series, t - int(days * DAY)), side="left")
            return (end - lo).astype(float), self.prefix[end] - self.prefix[lo]

        n_all, _ = window(LOOKBACK_DAYS)
        seen = n_all > 0
        last = np.where(seen, end - 1, 0)
        latest = np.where(seen, self.values[last] if len(keys) else np.nan, np.nan)
        days_since = np.where(seen, (t - self.times[last]) / DAY if len(keys) else np.nan, np.nan)
        n, s = {}, {}
        for days in WINDOW_DAYS:
            n[days], s[days] = window(days)
        with np.errstate(divide="ignore", invalid="ignore"):
            avg = {d: np.where(n[d] > 0, s[d] / n[d], np.nan) for d in WINDOW_DAYS}
            total = {d: np.where(n[d] > 0, s[d], np.nan) for d in WINDOW_DAYS}
            old_n = n[180] - n[90]
            baseline = np.where(
                old_n > 0,
                (s[180] - s[90]) / old_n,
                np.where(n[180] > 0, s[180] / n[180], np.nan),
            )
        active_days, week_share = self._activity(series, t, seen, end - n_all.astype(np.int64))
        out = {
            "days_since_active": active_days,
            "active_week_share": week_share,
            "latest": latest,
            "avg_7d": avg[7],
            "avg_30d": avg[30],
            "avg_90d": avg[90],
            "sum_30d": total[30],
            "sum_90d": total[90],
            "baseline": baseline,
            "days_since": days_since,
        }
        return {_FIELD[name]: np.where(seen, v, np.nan) for name, v in out.items()}

    def _activity(self, series, t, seen, first_at):
        """Days since the newest value above 0 (LOOKBACK_DAYS: none), and the share of the
        last ACTIVE_WEEKS weeks with one (of the weeks since the first observation)."""
        keys = self.used_series * (self.span + 1) + (self.used_times - self.t0)

        def at(moment):
            return np.searchsorted(keys, self._keys(series, moment), side="left")

        end = at(t)
        last = np.maximum(end - 1, 0)
        ok = (end > 0) & (self.used_series[last] == series) if len(keys) else np.zeros_like(seen)
        if len(keys):
            ok &= self.used_times[last] >= t - int(LOOKBACK_DAYS * DAY)
            since = np.where(ok, (t - self.used_times[last]) / DAY, float(LOOKBACK_DAYS))
        else:
            since = np.full(len(series), float(LOOKBACK_DAYS))
        weeks = np.zeros(len(series))
        hi = end
        for k in range(ACTIVE_WEEKS):
            lo = at(t - int((k + 1) * WEEK))
            weeks += hi > lo
            hi = lo
        first = (
            self.times[np.clip(first_at, 0, max(0, len(self.times) - 1))] if len(self.times) else t
        )
        covered = np.minimum(ACTIVE_WEEKS, (t - first) // int(WEEK) + 1)
        with np.errstate(invalid="ignore", divide="ignore"):  # unseen rows: NaN, no warning
            return since, np.where(seen, weeks / covered, np.nan)


def epoch(moment: datetime) -> int:
    return int(moment.timestamp())
