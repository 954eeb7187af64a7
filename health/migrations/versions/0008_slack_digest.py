"""slack digest: cached Slack users and the digests sent, once per recipient and day

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 12:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import health.models

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = health.models.UTCDateTime(timezone=True)


def text(length: int):
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def upgrade() -> None:
    op.create_table(
        "slackuser",
        sa.Column("email", text(255), nullable=False),
        sa.Column("slack_user_id", text(32), nullable=True),
        sa.Column("tz", text(64), nullable=False),
        sa.Column("checked_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("email"),
    )
    op.create_table(
        "digestsent",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("recipient", text(64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("sent_at", UTC_DATETIME, nullable=False),
        sa.Column("channel", text(32), nullable=True),
        sa.Column("ts", text(32), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("recipient", "day", name="uq_digest_recipient_day"),
    )


def downgrade() -> None:
    op.drop_table("digestsent")
    op.drop_table("slackuser")
