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
}


@dataclass(frozen=True, slots=True)
class Needs:
    """What a scorer reads: which windows, and the newest value of which signals
    (None: every signal)."""

    windows: frozenset[int] = frozenset(WINDOW_DAYS)
    latest_of: frozenset[str] | None = None

    @classmethod
    def of(cls, stats: Iterable[tuple[str, str]]) -> Needs:
        """From (signal, statistic) pairs."""
        windows: set[int] = set()
        latest: set[str] = set()
        for signal, stat in stats:
            windows.update(STAT_WINDOWS[stat])
            if stat == "latest":
                latest.add(signal)
        return cls(frozenset(windows), frozenset(latest))

    def wants_latest(self, signal: str) -> bool:
        return self.latest_of is None or signal in self.latest_of


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
) -> SignalStats:
    """SignalStats from the count and sum of each window of days (a count of None: the
    window was not computed, its statistics are None)."""
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
    )


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

    def get(self, stat: str) -> float | None:
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

        sums: list[float | None] = []
        for days in WINDOW_DAYS:  # n7, s7, n30, s30, n90, s90, n180, s180
            total, n = self._window(t - days * DAY, t)
            sums += [n, total]
        return from_window_sums(
            self._values[end - 1],
            self._stamps[end - 1],
            (t - self._times[end - 1]) / DAY,
            *sums,
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
