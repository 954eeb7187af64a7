"""observation series index

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 11:43:58.432221

Each (account, signal) series in time order, with its values on PostgreSQL (INCLUDE), so the
rescore's statistics read it without a sort or a heap visit.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("observation", schema=None) as batch_op:
        batch_op.create_index(
            "ix_observation_series",
            ["account_id", "signal", "observed_at"],
            unique=False,
            postgresql_include=["value"],
        )


def downgrade() -> None:
    with op.batch_alter_table("observation", schema=None) as batch_op:
        batch_op.drop_index("ix_observation_series", postgresql_include=["value"])
