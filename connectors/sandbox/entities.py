"""The sandbox portfolio's entities: what the fake CRM, help desk, billing and product-usage
APIs serve. Plain frozen dataclasses; `connectors.sandbox.portfolio` generates them.

Beyond the brief: ``SandboxAccount.churned_on``, ``Touch.sentiment`` (the CSM's 1-5 rating
logged with a touch, about monthly) and ``Renewal.prior_amount`` (ARR before the renewal).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime


@dataclass(frozen=True, slots=True)
class SandboxAccount:
    external_id: str
    name: str
    domain: str
    owner: str
    segment: str
    seats: int  # licensed seats at `end` (the last contract's for a churned account)
    arr: float  # ARR at `end` (the last contract's for a churned account)
    customer_since: date
    renewal_date: date  # the first anniversary of customer_since after `end`
    trajectory: str  # hidden ground truth: thriving | slow_decline | sudden_shock | recovering
    shock_day: date | None = None
    churned_on: date | None = None


@dataclass(frozen=True, slots=True)
class Ticket:
    external_id: str
    account_id: str
    created_at: datetime
    solved_at: datetime | None
    priority: str  # low | normal | high | urgent (urgent == sev-1)
    status: str  # new | open | pending | solved | closed
    subject: str
    satisfaction: str | None  # good | bad | None
    escalated: bool


@dataclass(frozen=True, slots=True)
class Contact:
    external_id: str
    account_id: str
    name: str
    email: str
    title: str
    is_champion: bool
    left_on: date | None


@dataclass(frozen=True, slots=True)
class Touch:
    external_id: str
    account_id: str
    occurred_at: datetime
    kind: str  # call | meeting | email
    executive: bool
    subject: str
    sentiment: int | None = None  # the CSM's 1-5 gut rating logged with this touch


@dataclass(frozen=True, slots=True)
class NpsResponse:
    account_id: str
    responded_at: datetime
    score: int


@dataclass(frozen=True, slots=True)
class UsageDay:
    account_id: str
    day: date
    active_users: int
    seats: int
    core_features_used: int
    key_events: int


@dataclass(frozen=True, slots=True)
class Invoice:
    external_id: str
    account_id: str
    due_on: date
    paid_on: date | None
    failed: bool
    amount: float


@dataclass(frozen=True, slots=True)
class Renewal:
    external_id: str
    account_id: str
    close_date: date
    outcome: str  # renewed | churned | expanded | open
    amount: float  # ARR after (0 when churned; the current ARR while open)
    prior_amount: float = 0.0  # ARR before


@dataclass
class Portfolio:
    start: date
    end: date
    accounts: list[SandboxAccount] = field(default_factory=list)
    usage: list[UsageDay] = field(default_factory=list)
    tickets: list[Ticket] = field(default_factory=list)
    contacts: list[Contact] = field(default_factory=list)
    touches: list[Touch] = field(default_factory=list)
    nps: list[NpsResponse] = field(default_factory=list)
    invoices: list[Invoice] = field(default_factory=list)
    renewals: list[Renewal] = field(default_factory=list)

    def truth(self) -> dict[str, str]:
        return {a.external_id: a.trajectory for a in self.accounts}
