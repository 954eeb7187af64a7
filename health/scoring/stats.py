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
  days_since_active    days from the newest observation with a value above 0 to now; a series
                       with no such value within LOOKBACK_DAYS reads LOOKBACK_DAYS (no use in
                       a year), so "used it yesterday" and "gone for months" never look alike
  active_week_share    of the last ACTIVE_WEEKS 7-day weeks back from now (week k is
                       [now - 7(k+1) days, now - 7k days)), those with a value above 0, over the
                       weeks since the series' first observation (at most ACTIVE_WEEKS): weekly
                       or sparse rows read the same as daily ones, a new account is not
                       penalised for weeks before it existed

A scorer states what it reads as `Needs` (`needs_of(model)`): the SQL pass then aggregates
only those windows and looks up newest values only for those signals; statistics not asked
for are None.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

LOOKBACK_DAYS = 365
DAY = 86400.0
ACTIVE_WEEKS = 12
WEEK = 7 * DAY
ACTIVE_STATS = ("days_since_active", "active_week_share")  # need the activity aggregates


WINDOW_DAYS = (7, 30, 90, 180)  # the windows the statistics are built from
STAT_WINDOWS: dict[str, tuple[int, ...]] = {
    "avg_7d": (7,),
    "avg_30d": (30,),
    "sum_30d": (30,),
    "avg_90d": (90,),
    "sum_90d": (90,),
    "baseline": (90, 180),
    "latest": (),
    "days_since": (),
    "days_since_active": (),
    "active_week_share": (),
}


@dataclass(frozen=True, slots=True)
class Needs:
    """What a scorer reads: which windows, the newest value of which signals, and the
    activity statistics (ACTIVE_STATS) of which signals (None: every signal)."""

    windows: frozenset[int] = frozenset(WINDOW_DAYS)
    latest_of: frozenset[str] | None = None
    active_of: frozenset[str] | None = None

    @classmethod
    def of(cls, stats: Iterable[tuple[str, str]]) -> Needs:
        """From (signal, statistic) pairs."""
        windows: set[int] = set()
        latest: set[str] = set()
        active: set[str] = set()
        for signal, stat in stats:
            windows.update(STAT_WINDOWS[stat])
            if stat == "latest":
                latest.add(signal)
            elif stat in ACTIVE_STATS:
                active.add(signal)
        return cls(frozenset(windows), frozenset(latest), frozenset(active))

    def wants_latest(self, signal: str) -> bool:
        return self.latest_of is None or signal in self.latest_of

    def wants_active(self, signal: str) -> bool:
        return self.active_of is None or signal in self.active_of


ALL = Needs()


def from_window_sums(
    latest: float | None,
    latest_at: datetime,
    days_since: float,
    n7: int | None = None,
    s7: float | None = None,
    n30: int | None = None,
    s30: float | None = None,
    n90: int | None = None,
    s90: float | None = None,
    n180: int | None = None,
    s180: float | None = None,
    *,
    active_days: float | None = None,
    first_days: float | None = None,
    active_weeks: int | None = None,
) -> SignalStats:
    """SignalStats from the count and sum of each window of days (a count of None: the
    window was not computed, its statistics are None) and, when the activity statistics were
    computed (`first_days`: days since the series' first observation in the lookback), days
    since the newest value above 0 (`active_days`, None: none) and the number of the last
    ACTIVE_WEEKS weeks with one."""
    baseline = None
    if n180 and n90 is not None:
        if n180 > n90:
            baseline = ((s180 or 0.0) - (s90 or 0.0)) / (n180 - n90)
        else:
            baseline = (s180 or 0.0) / n180
    return SignalStats(
        latest,
        latest_at,
        s7 / n7 if n7 else None,
        s30 / n30 if n30 else None,
        s90 / n90 if n90 else None,
        (s30 or 0.0) if n30 else None,
        (s90 or 0.0) if n90 else None,
        baseline,
        days_since,
        *activity(active_days, first_days, active_weeks),
    )


def activity(
    active_days: float | None, first_days: float | None, active_weeks: int | None
) -> tuple[float | None, float | None]:
    """(days_since_active, active_week_share); both None when not computed."""
    if first_days is None:
        return None, None
    covered = min(ACTIVE_WEEKS, int(first_days * DAY // WEEK) + 1)
    since = LOOKBACK_DAYS if active_days is None else min(active_days, LOOKBACK_DAYS)
    return float(since), (active_weeks or 0) / covered


class SignalStats(NamedTuple):
    """One signal's statistics at a scoring instant (see the module docstring)."""

    latest: float | None  # None when the scorer did not ask for it (see Needs)
    latest_at: datetime
    avg_7d: float | None = None
    avg_30d: float | None = None
    avg_90d: float | None = None
    sum_30d: float | None = None
    sum_90d: float | None = None
    baseline: float | None = None
    days_since: float = 0.0  # from latest_at to the scoring instant
    days_since_active: float | None = None  # see the module docstring
    active_week_share: float | None = None

    def get(self, stat: str) -> float | None:
        return getattr(self, stat)


class SignalSeries:
    """One account's observations of one signal, indexed for O(log n) statistics at any instant."""

    __slots__ = ("_times", "_values", "_prefix", "_stamps", "_active")

    def __init__(self, points: Iterable[tuple[datetime, float]]):
        pts = sorted(points, key=lambda p: p[0])
        self._stamps = [t for t, _ in pts]
        self._times = [t.timestamp() for t in self._stamps]
        self._values = [v for _, v in pts]
        prefix = [0.0]
        for v in self._values:
            prefix.append(prefix[-1] + v)
        self._prefix = prefix
        self._active = [t for t, v in zip(self._times, self._values, strict=True) if v > 0]

    def _window(self, lo: float, hi: float) -> tuple[float, int]:
        i, j = bisect_left(self._times, lo), bisect_left(self._times, hi)
        return self._prefix[j] - self._prefix[i], j - i

    def stats_at(self, now: datetime, *, active: bool = True) -> SignalStats | None:
        """The statistics at `now` (None: nothing observed in the lookback); `active`: with
        the activity statistics (ACTIVE_STATS), else those are None."""
        t = now.timestamp()
        end = bisect_left(self._times, t)
        if end == 0 or self._times[end - 1] < t - LOOKBACK_DAYS * DAY:
            return None

        sums: list[float | None] = []
        for days in WINDOW_DAYS:  # n7, s7, n30, s30, n90, s90, n180, s180
            total, n = self._window(t - days * DAY, t)
            sums += [n, total]
        latest = (self._values[end - 1], self._stamps[end - 1], (t - self._times[end - 1]) / DAY)
        if not active:
            return from_window_sums(*latest, *sums)
        lo = t - LOOKBACK_DAYS * DAY
        first = self._times[bisect_left(self._times, lo)]
        used, hi = self._active, bisect_left(self._active, t)
        last = used[hi - 1] if hi and used[hi - 1] >= lo else None
        weeks = 0
        for k in range(ACTIVE_WEEKS):  # newest week first; `hi` ends the week
            start = bisect_left(used, t - (k + 1) * WEEK, 0, hi)
            weeks += start < hi
            hi = start
        return from_window_sums(
            *latest,
            *sums,
            active_days=None if last is None else (t - last) / DAY,
            first_days=(t - first) / DAY,
            active_weeks=weeks,
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
