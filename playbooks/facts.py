"""What the engine knows about an account when it evaluates playbooks: plain data, read in
batches by `playbooks.store` (or built by hand in tests)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime

from health.scoring.stats import SignalStats

ONBOARDING_DAYS = 90  # lifecycle stages, as the scoring model's defaults
RENEWAL_WINDOW_DAYS = 90
LIFECYCLES = ("onboarding", "renewal", "adopted")


@dataclass(frozen=True, slots=True)
class ChangeFacts:
    """The score change being evaluated (from `ScoreChange`)."""

    change_id: int | None
    changed_at: datetime
    from_tier: str | None
    to_tier: str
    delta: float
    hard_event: str | None = None


@dataclass(frozen=True, slots=True)
class AccountFacts:
    account_id: int
    name: str
    owner: str | None = None
    segment: str | None = None
    arr: float | None = None
    renewal_date: date | None = None
    customer_since: date | None = None
    total: float | None = None  # newest score
    tier: str | None = None  # the announced tier (what people see)
    reason: str = ""
    drivers: tuple[str, ...] = ()  # labels of the top drivers, biggest first
    confidence: float | None = None
    total_ago: Mapping[int, float] = field(default_factory=dict)  # days -> the score then
    signals: Mapping[str, SignalStats] = field(default_factory=dict)
    last_active_days: Mapping[str, float | None] = field(default_factory=dict)  # signal -> days
    weekly: Mapping[str, tuple[float | None, ...]] = field(default_factory=dict)  # newest first
    sentiment: int | None = None  # newest CSM rating 1-5
    sentiment_direction: str | None = None
    previous_sentiment: int | None = None
    change: ChangeFacts | None = None

    def renewal_days(self, today: date) -> int | None:
        return None if self.renewal_date is None else (self.renewal_date - today).days

    def lifecycle(self, today: date) -> str:
        since = self.customer_since
        if since is not None and 0 <= (today - since).days < ONBOARDING_DAYS:
            return "onboarding"
        days = self.renewal_days(today)
        if days is not None and 0 <= days <= RENEWAL_WINDOW_DAYS:
            return "renewal"
        return "adopted"
