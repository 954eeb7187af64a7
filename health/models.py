"""SQLModel tables. Natural-key unique constraints make every rerun idempotent.

Tables carry no business methods: rules live in `health.scoring` and `health.services`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Index, TypeDecorator, UniqueConstraint, text
from sqlmodel import Field, SQLModel


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC in Python, on every backend (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: healthbot stores aware UTC datetimes")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utc_column(*, nullable: bool = False, index: bool = False) -> Any:
    return Field(sa_type=UTCDateTime, nullable=nullable, index=index)


def json_column() -> Any:
    return Field(default=None, sa_column=Column(JSON))


class Account(SQLModel, table=True):
    """One customer. Its fields come from its linked CRM records (`CrmRecord`): the primary
    CRM's record wins where they disagree, the others fill gaps. `source` / `external_id`
    name that leading record (a label: records are unique in CrmRecord)."""

    # `/health acme corp` finds "Acme Corp" by equality, not a trigram scan (migration 0012)
    __table_args__ = (Index("ix_account_name_lower", text("lower(name)")),)

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=32)  # the leading record's system: salesforce, hubspot, ...
    external_id: str = Field(max_length=64)
    name: str = Field(max_length=255, index=True)
    domain: str | None = Field(default=None, max_length=255, index=True)
    owner: str | None = Field(default=None, max_length=255)
    segment: str | None = Field(default=None, max_length=16)
    arr: float | None = None
    customer_since: date | None = None
    renewal_date: date | None = None
    deleted_at: datetime | None = utc_column(nullable=True)
    updated_at: datetime = utc_column()
    merged_into: int | None = Field(default=None, foreign_key="account.id")  # absorbed by a link


class CrmRecord(SQLModel, table=True):
    """One account record in one CRM, linked to the customer account it belongs to. Its own
    fields are kept as the CRM sent them; the account's are derived from its records."""

    __table_args__ = (UniqueConstraint("source", "external_id", name="uq_crmrecord_source_ext"),)

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id", index=True)
    source: str = Field(max_length=32)
    external_id: str = Field(max_length=64, index=True)
    name: str = Field(max_length=255)
    domain: str | None = Field(default=None, max_length=255, index=True)
    owner: str | None = Field(default=None, max_length=255)
    segment: str | None = Field(default=None, max_length=16)
    arr: float | None = None
    customer_since: date | None = None
    renewal_date: date | None = None
    cross_ref: str | None = Field(default=None, max_length=64)  # its id in another CRM
    linked_by: str = Field(default="new", max_length=16)  # new / cross_ref / domain / manual
    pinned: bool = False  # a person linked or unlinked it: syncs never move it
    home_account_id: int | None = None  # the account it had before a link moved it
    review: str | None = None  # why it was left on its own account (ambiguous), for a person
    deleted_at: datetime | None = utc_column(nullable=True)
    updated_at: datetime = utc_column()


class Observation(SQLModel, table=True):
    """One observed value of one signal: the time series every score is computed from."""

    __table_args__ = (
        UniqueConstraint(
            "record_id", "signal", "observed_at", "source", name="uq_observation_natural"
        ),
        # one series in time order with its values: statistics read it without a sort or
        # a heap visit (PostgreSQL; a plain index elsewhere)
        Index(
            "ix_observation_series",
            "account_id",
            "signal",
            "observed_at",
            postgresql_include=["value"],
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id")
    record_id: int = Field(foreign_key="crmrecord.id")  # the record it came in for
    signal: str = Field(max_length=48)
    observed_at: datetime = utc_column()
    value: float
    source: str = Field(max_length=32)


class Outcome(SQLModel, table=True):
    __table_args__ = (
        UniqueConstraint("record_id", "kind", "occurred_on", name="uq_outcome_natural"),
    )

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id", index=True)
    record_id: int = Field(foreign_key="crmrecord.id")
    kind: str = Field(max_length=16)  # renewed / churned / expanded
    occurred_on: date
    arr_change: float | None = None
    source: str = Field(max_length=32)
    external_id: str | None = Field(default=None, max_length=64)


class Score(SQLModel, table=True):
    """One account's score for one scoring day: history is point-in-time."""

    __table_args__ = (UniqueConstraint("account_id", "score_date", name="uq_score_day"),)

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id")
    score_date: date = Field(index=True)
    computed_at: datetime = utc_column()
    total: float
    tier: str = Field(max_length=16)  # the tier this score falls in today
    announced_tier: str = Field(max_length=16)  # the tier shown to people (held tier_hold_days)
    pending_since: date | None = None  # when `tier` first differed from announced_tier
    confidence: float
    trend_30d: float | None = None
    trend_90d: float | None = None
    components: dict | None = json_column()  # breakdown: component -> score, weight, age, metrics
    drivers: list | None = json_column()
    hard_events: list | None = json_column()
    reason: str = ""
    model_version: str = Field(max_length=32)


class ScoreChange(SQLModel, table=True):
    """Audit trail: what moved, by how much, when and why."""

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id", index=True)
    score_id: int = Field(foreign_key="score.id", unique=True)  # one change per score row
    changed_at: datetime = utc_column(index=True)
    from_total: float | None = None
    to_total: float
    delta: float
    from_tier: str | None = Field(default=None, max_length=16)
    to_tier: str = Field(max_length=16)
    tier_announced: bool = False  # the announced tier changed with this score
    hard_event: str | None = Field(default=None, max_length=32)
    reason: str = ""


class SentimentEntry(SQLModel, table=True):
    """A CSM's structured read of an account: it feeds the score (capped), never overrides it."""

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id", index=True)
    rating: int  # 1-5
    direction: str | None = Field(default=None, max_length=16)  # improving / steady / declining
    flags: list | None = json_column()  # champion_left, exec_sponsor_engaged, competitor, budget
    note: str = ""
    author: str = Field(max_length=64)  # slack_user_id or email
    created_at: datetime = utc_column()


class PlaybookTask(SQLModel, table=True):
    """A task a playbook opened for an account: one live (open or snoozed) task per account
    and playbook (a partial unique index); resolved tasks stay as the record of what was done."""

    __table_args__ = (
        Index(
            "uq_playbooktask_live",
            "account_id",
            "playbook",
            unique=True,
            sqlite_where=text("resolved_at IS NULL"),
            postgresql_where=text("resolved_at IS NULL"),
        ),
        Index("ix_playbooktask_status_due", "status", "due_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id", index=True)
    playbook: str = Field(max_length=64)
    title: str = Field(max_length=255)
    description: str = ""
    steps: list | None = json_column()
    severity: str = Field(default="medium", max_length=8)  # low / medium / high
    status: str = Field(default="open", max_length=16)  # open / snoozed / done / recovered
    owner_role: str = Field(default="account_owner", max_length=32)
    owner: str | None = Field(default=None, max_length=255)  # email (or Slack user id)
    escalation_level: int = 0
    trigger: str = ""  # what matched, in words
    tier_at_open: str | None = Field(default=None, max_length=16)
    score_at_open: float | None = None
    change_id: int | None = None  # the ScoreChange that opened it
    rule_version: str = Field(default="", max_length=32)
    alert_channel: str | None = Field(default=None, max_length=64)
    triggered_at: datetime = utc_column()  # when the signal happened (the score change)
    created_at: datetime = utc_column()
    updated_at: datetime = utc_column()
    last_triggered_at: datetime = utc_column()
    due_at: datetime = utc_column()
    snoozed_until: datetime | None = utc_column(nullable=True)
    cleared_since: datetime | None = utc_column(nullable=True)  # condition stopped holding
    overdue_at: datetime | None = utc_column(nullable=True)  # past due, nobody left to escalate to
    first_action_at: datetime | None = utc_column(nullable=True)  # a person acted on it
    resolved_at: datetime | None = utc_column(nullable=True)
    resolved_by: str | None = Field(default=None, max_length=64)
    notify: bool = True  # a Slack message about it is due (opened, escalated, back from snooze)
    notified_at: datetime | None = utc_column(nullable=True)  # its last Slack message
    slack_channel_id: str | None = Field(default=None, max_length=32)
    slack_ts: str | None = Field(default=None, max_length=32)


class PlaybookTaskEvent(SQLModel, table=True):
    """The audit log: every change of a task, who made it and when."""

    id: int | None = Field(default=None, primary_key=True)
    task_id: int = Field(foreign_key="playbooktask.id", index=True)
    at: datetime = utc_column()
    actor: str = Field(max_length=64)  # "healthbot" or a Slack user id / email
    action: str = Field(max_length=16)  # opened, refreshed, cleared, recovered, escalated, ...
    detail: dict | None = json_column()


class SyncState(SQLModel, table=True):
    """Per-source watermark; advanced in the same transaction as the data it covers."""

    source: str = Field(primary_key=True, max_length=32)
    watermark: str | None = None
    updated_at: datetime = utc_column()
    last_report: dict | None = json_column()


class SyncError(SQLModel, table=True):
    """A record a source could not use, kept so an admin can see and fix it."""

    __table_args__ = (
        UniqueConstraint("source", "record_key", "reason", name="uq_syncerror_problem"),
    )

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=32, index=True)
    record_key: str = Field(max_length=128)
    reason: str
    seen_at: datetime = utc_column()


class OutboxItem(SQLModel, table=True):
    """The newest score waiting to be written to one CRM for one account; deleted once the CRM
    acknowledged that record. Per-record errors stay on the row: transient ones are retried
    at `next_attempt_at`, permanent ones are parked (`parked_at`) with the CRM's own code."""

    __table_args__ = (UniqueConstraint("record_id", name="uq_outbox_record"),)

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id")
    record_id: int = Field(foreign_key="crmrecord.id")  # the CRM record to write to
    target: str = Field(max_length=32)  # salesforce / hubspot
    score_id: int = Field(foreign_key="score.id", index=True)
    created_at: datetime = utc_column()
    attempts: int = 0
    error_code: str | None = Field(default=None, max_length=64)  # the CRM's own code
    last_error: str | None = None
    next_attempt_at: datetime | None = utc_column(nullable=True)
    parked_at: datetime | None = utc_column(nullable=True)
    # set while a write is on its way: a row found so marked was cut off by a crash, and the
    # CRM is asked whether it already holds the values before anything is sent again
    sent_at: datetime | None = utc_column(nullable=True)


class CrmWrite(SQLModel, table=True):
    """What a CRM last acknowledged for an account: a score that shows the same is not sent."""

    __table_args__ = (UniqueConstraint("record_id", name="uq_crmwrite_record"),)

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id")
    record_id: int = Field(foreign_key="crmrecord.id")
    target: str = Field(max_length=32)
    external_id: str = Field(max_length=64)
    score_id: int | None = None  # no foreign key: the history it came from may be pruned
    fingerprint: str = Field(max_length=64)  # of the values the CRM shows
    written_at: datetime = utc_column()


class TaskFailure(SQLModel, table=True):
    """A background task that failed for good (retries exhausted or a permanent error)."""

    id: int | None = Field(default=None, primary_key=True)
    task: str = Field(max_length=64, index=True)
    args: str = ""
    reason: str
    failed_at: datetime = utc_column()


class SlackUser(SQLModel, table=True):
    """A CRM owner's Slack user (users.lookupByEmail), cached: time zone for the digest."""

    email: str = Field(primary_key=True, max_length=255)  # lower-cased
    slack_user_id: str | None = Field(default=None, max_length=32)  # None: not in Slack
    tz: str = Field(default="UTC", max_length=64)
    checked_at: datetime = utc_column()


class DigestSent(SQLModel, table=True):
    """One digest per recipient and local day: claimed before it is posted, so two beat
    firings never send it twice; a failed post gives the claim back."""

    __table_args__ = (UniqueConstraint("recipient", "day", name="uq_digest_recipient_day"),)

    id: int | None = Field(default=None, primary_key=True)
    recipient: str = Field(max_length=64)  # a Slack user id, or channel:<id> for the roll-up
    day: date
    sent_at: datetime = utc_column()
    channel: str | None = Field(default=None, max_length=32)
    ts: str | None = Field(default=None, max_length=32)


class ProcessedSlackEvent(SQLModel, table=True):
    """An Events API event already handled: Slack's retries and replays of it do nothing."""

    event_id: str = Field(primary_key=True, max_length=64)
    received_at: datetime = utc_column()
