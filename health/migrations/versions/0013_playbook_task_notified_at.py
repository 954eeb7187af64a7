"""playbook tasks remember when their last Slack message went out (`notified_at`): the
per-account cooldown and the App Home read it. 0011 shipped without it.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-29 17:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import health.models

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("playbooktask") as batch_op:
        batch_op.add_column(sa.Column("notified_at", health.models.UTCDateTime(timezone=True),
                                      nullable=True))  # fmt: skip


def downgrade() -> None:
    with op.batch_alter_table("playbooktask") as batch_op:
        batch_op.drop_column("notified_at")
