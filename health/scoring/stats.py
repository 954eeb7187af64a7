"""Per-signal statistics at a point in time: the only thing the engine reads from a series.

The same statistics are computed two ways with one definition:
  - here, in Python, from an account's observations (tests, the demo's day-by-day replay);
  - in SQL where the observations live (`health.stats_sql`), for the full rescore.
A test checks both agree.

Definitions, for a scoring instant `now` (windows are [now - N days, now)):
  latest / latest_at   newest observation within LOOKBACK_DAYS
  avg_Nd, sum_Nd       mean / total of the observations in the last N days (None when none)
  baseline             mean of days 180..90 before now; for a series younger than that,
                       the mean of everything observed so far (the account's own onboarding level)
  days_since           days from latest_at to now
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

LOOKBACK_DAYS = 365
DAY = 86400.0


@dataclass(frozen=True, slots=True)
class SignalStats:
    latest: float
    latest_at: datetime
    avg_7d: float | None = None
    avg_30d: float | None = None
    avg_90d: float | None = None
    sum_30d: float | None = None
    sum_90d: float | None = None
    baseline: float | None = None

    def days_since(self, now: datetime) -> float:
        return (now - self.latest_at).total_seconds() / DAY

    def get(self, stat: str, now: datetime) -> float | None:
        if stat == "days_since":
            return self.days_since(now)
        return getattr(self, stat)


class SignalSeries:
    """One account's observations of one signal, indexed for O(log n) statistics at any instant."""

    __slots__ = ("_times", "_values", "_prefix", "_stamps")

    def __init__(self, points: Iterable[tuple[datetime, float]]):
        pts = sorted(points, key=lambda p: p[0])
        self._stamps = [t for t, _ in pts]
        self._times = [t.timestamp() for t in self._stamps]
        self._values = [v for _, v in pts]
        prefix = [0.0]
        for v in self._values:
            prefix.append(prefix[-1] + v)
        self._prefix = prefix

    def _window(self, lo: float, hi: float) -> tuple[float, int]:
        i, j = bisect_left(self._times, lo), bisect_left(self._times, hi)
        return self._prefix[j] - self._prefix[i], j - i

    def stats_at(self, now: datetime) -> SignalStats | None:
        t = now.timestamp()
        end = bisect_left(self._times, t)
        if end == 0 or self._times[end - 1] < t - LOOKBACK_DAYS * DAY:
            return None

        def window(days: int) -> tuple[float, int]:
            return self._window(t - days * DAY, t)

        def avg(days: int) -> float | None:
            total, n = window(days)
            return total / n if n else None

        def total(days: int) -> float | None:
            s, n = window(days)
            return s if n else None

        old_sum, old_n = self._window(t - 180 * DAY, t - 90 * DAY)
        if old_n:
            baseline = old_sum / old_n
        else:
            all_sum, all_n = self._window(t - 180 * DAY, t)
            baseline = all_sum / all_n if all_n else None
        return SignalStats(
            latest=self._values[end - 1],
            latest_at=self._stamps[end - 1],
            avg_7d=avg(7),
            avg_30d=avg(30),
            avg_90d=avg(90),
            sum_30d=total(30),
            sum_90d=total(90),
            baseline=baseline,
        )


def summarize(
    observations: Iterable[tuple[str, datetime, float]], now: datetime
) -> dict[str, SignalStats]:
    """(signal, observed_at, value) triples -> statistics per signal at `now`."""
    by_signal: dict[str, list[tuple[datetime, float]]] = {}
    for signal, at, value in observations:
        by_signal.setdefault(signal, []).append((at, value))
    out = {}
    for signal, points in by_signal.items():
        stats = SignalSeries(points).stats_at(now)
        if stats is not None:
            out[signal] = stats
    return out


def window_start(now: datetime) -> datetime:
    """The oldest observation any statistic at `now` can read."""
    return now - timedelta(days=LOOKBACK_DAYS)
