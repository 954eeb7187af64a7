"""Plain records that cross boundaries: connectors yield them, the store persists them.

No SQLModel, no I/O. Datetimes are timezone-aware UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

SEGMENTS = ("enterprise", "mid_market", "smb")
OUTCOME_KINDS = ("renewed", "churned", "expanded")


@dataclass(frozen=True, slots=True)
class AccountRef:
    """How a record names its account: by a CRM id, or failing that by web domain."""

    crm_id: str | None = None
    domain: str | None = None

    def key(self) -> str:
        if self.crm_id:
            return self.crm_id
        return f"domain:{self.domain}" if self.domain else "?"


@dataclass(frozen=True, slots=True)
class AccountRecord:
    source: str  # the system of record: "salesforce", "hubspot", "sandbox", "csv"
    external_id: str  # the id in that system (the account's CRM id)
    name: str
    domain: str | None = None
    owner: str | None = None  # owner's email (or name when the CRM gives no email)
    segment: str | None = None  # one of SEGMENTS
    arr: float | None = None
    customer_since: date | None = None
    renewal_date: date | None = None
    deleted: bool = False
    cross_ref: str | None = None  # the same customer's id in another CRM, when the CRM says


@dataclass(frozen=True, slots=True)
class ObservationRecord:
    account: AccountRef
    signal: str  # a signal key of the scoring model's catalogue, e.g. "active_users"
    observed_at: datetime
    value: float
    source: str


@dataclass(frozen=True, slots=True)
class OutcomeRecord:
    account: AccountRef
    kind: str  # one of OUTCOME_KINDS
    occurred_on: date
    source: str
    arr_change: float | None = None
    external_id: str | None = None


@dataclass(frozen=True, slots=True)
class RecordError:
    """A record a connector could not turn into a typed record, and why."""

    source: str
    key: str
    reason: str


@dataclass(frozen=True, slots=True)
class SwitchedOff:
    """A field or property the connected system lacks, and what the sync does without it:
    reported once per run (sync report, `healthbot doctor`), never per record."""

    source: str
    field: str  # e.g. "Case.CSAT__c"
    turns_off: str  # what is missing without it, e.g. "the csat signal"
    key: str  # the mapping key (or setting) that names it, e.g. "case.satisfaction"
    fix: str  # what to do: create the field, or point the key at a field the org has

    def __str__(self) -> str:
        return f"{self.field} is missing: {self.turns_off} ({self.fix})"


@dataclass(slots=True)
class Batch:
    """What a source yields: records plus the watermark that is safe once they are stored."""

    accounts: list[AccountRecord] = field(default_factory=list)
    observations: list[ObservationRecord] = field(default_factory=list)
    outcomes: list[OutcomeRecord] = field(default_factory=list)
    errors: list[RecordError] = field(default_factory=list)
    watermark: str | None = None  # opaque to the store; None keeps the previous one
    fetched: int | None = None  # raw vendor records read for this batch (None: count them)
    # the accounts are customers of CRM accounts (billing): one matching no account by
    # cross_ref or domain is recorded as a sync error, never given an account of its own
    attach_only: bool = False

    def __len__(self) -> int:
        return len(self.accounts) + len(self.observations) + len(self.outcomes)


@dataclass(frozen=True, slots=True)
class ScoreWrite:
    """One account's score as it is written back onto the CRM account page."""

    account_external_id: str
    score: int
    tier: str
    trend_30d: float | None
    drivers: str  # the top drivers, one line
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class WriteError:
    """Why the CRM refused one record, in its own words; `transient` errors (a row lock, a
    timeout) are worth retrying, the others (deleted record, validation rule, field-level
    security) are not."""

    code: str
    message: str
    transient: bool = False

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


@dataclass(frozen=True, slots=True)
class WriteResult:
    ok: list[str] = field(default_factory=list)  # external ids acknowledged
    errors: dict[str, WriteError] = field(default_factory=dict)  # external id -> why not
