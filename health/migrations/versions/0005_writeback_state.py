"""writeback state: per-record errors on the outbox, what each CRM last acknowledged, and
background tasks that failed for good

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 11:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import health.models

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = health.models.UTCDateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("outboxitem", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("error_code", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True)
        )
        batch_op.add_column(sa.Column("next_attempt_at", UTC_DATETIME, nullable=True))
        batch_op.add_column(sa.Column("parked_at", UTC_DATETIME, nullable=True))
        batch_op.add_column(sa.Column("sent_at", UTC_DATETIME, nullable=True))
    op.create_table(
        "crmwrite",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("target", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("external_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("score_id", sa.Integer(), nullable=True),
        sa.Column("fingerprint", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("written_at", UTC_DATETIME, nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["account.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("account_id", "target", name="uq_crmwrite_account_target"),
    )
    op.create_table(
        "taskfailure",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("task", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("args", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("failed_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_taskfailure_task", "taskfailure", ["task"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_taskfailure_task", table_name="taskfailure")
    op.drop_table("taskfailure")
    op.drop_table("crmwrite")
    with op.batch_alter_table("outboxitem", schema=None) as batch_op:
        for column in ("sent_at", "parked_at", "next_attempt_at", "error_code"):
            batch_op.drop_column(column)
