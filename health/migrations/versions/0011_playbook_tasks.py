"""playbook tasks: one live task per account and playbook, with owner role, severity, due,
snooze, recovery and escalation state; the audit log of every task change

The 0001 `playbooktask` table was never written to (no playbook engine existed): it is
replaced.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29 13:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import health.models

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = sqlmodel.sql.sqltypes.AutoString
UTC = health.models.UTCDateTime


def upgrade() -> None:
    with op.batch_alter_table("playbooktask", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_playbooktask_account_id"))
    op.drop_table("playbooktask")
    op.create_table(
        "playbooktask",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("playbook", S(length=64), nullable=False),
        sa.Column("title", S(length=255), nullable=False),
        sa.Column("description", S(), nullable=False),
        sa.Column("steps", sa.JSON(), nullable=True),
        sa.Column("severity", S(length=8), nullable=False),
        sa.Column("status", S(length=16), nullable=False),
        sa.Column("owner_role", S(length=32), nullable=False),
        sa.Column("owner", S(length=255), nullable=True),
        sa.Column("escalation_level", sa.Integer(), nullable=False),
        sa.Column("trigger", S(), nullable=False),
        sa.Column("tier_at_open", S(length=16), nullable=True),
        sa.Column("score_at_open", sa.Float(), nullable=True),
        sa.Column("change_id", sa.Integer(), nullable=True),
        sa.Column("rule_version", S(length=32), nullable=False),
        sa.Column("alert_channel", S(length=64), nullable=True),
        sa.Column("triggered_at", UTC(timezone=True), nullable=False),
        sa.Column("created_at", UTC(timezone=True), nullable=False),
        sa.Column("updated_at", UTC(timezone=True), nullable=False),
        sa.Column("last_triggered_at", UTC(timezone=True), nullable=False),
        sa.Column("due_at", UTC(timezone=True), nullable=False),
        sa.Column("snoozed_until", UTC(timezone=True), nullable=True),
        sa.Column("cleared_since", UTC(timezone=True), nullable=True),
        sa.Column("overdue_at", UTC(timezone=True), nullable=True),
        sa.Column("first_action_at", UTC(timezone=True), nullable=True),
        sa.Column("resolved_at", UTC(timezone=True), nullable=True),
        sa.Column("resolved_by", S(length=64), nullable=True),
        sa.Column("notify", sa.Boolean(), nullable=False),
        sa.Column("slack_channel_id", S(length=32), nullable=True),
        sa.Column("slack_ts", S(length=32), nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["account.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("playbooktask", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_playbooktask_account_id"), ["account_id"], unique=False
        )
        batch_op.create_index("ix_playbooktask_status_due", ["status", "due_at"], unique=False)
    op.create_index(
        "uq_playbooktask_live",
        "playbooktask",
        ["account_id", "playbook"],
        unique=True,
        sqlite_where=sa.text("resolved_at IS NULL"),
        postgresql_where=sa.text("resolved_at IS NULL"),
    )
    op.create_table(
        "playbooktaskevent",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("at", UTC(timezone=True), nullable=False),
        sa.Column("actor", S(length=64), nullable=False),
        sa.Column("action", S(length=16), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(["task_id"], ["playbooktask.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("playbooktaskevent", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_playbooktaskevent_task_id"), ["task_id"], unique=False)


def downgrade() -> None:
    op.drop_table("playbooktaskevent")
    op.drop_table("playbooktask")
    op.create_table(
        "playbooktask",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("playbook", S(length=64), nullable=False),
        sa.Column("title", S(length=255), nullable=False),
        sa.Column("status", S(length=16), nullable=False),
        sa.Column("dedupe_key", S(length=128), nullable=False),
        sa.Column("rule_version", S(length=32), nullable=False),
        sa.Column("owner", S(length=255), nullable=True),
        sa.Column("due_at", UTC(timezone=True), nullable=True),
        sa.Column("snoozed_until", UTC(timezone=True), nullable=True),
        sa.Column("created_at", UTC(timezone=True), nullable=False),
        sa.Column("slack_channel_id", S(length=32), nullable=True),
        sa.Column("slack_ts", S(length=32), nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["account.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("dedupe_key"),
    )
    with op.batch_alter_table("playbooktask", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_playbooktask_account_id"), ["account_id"], unique=False
        )
