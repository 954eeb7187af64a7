"""outbox score index

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 13:55:00

PostgreSQL does not index the referencing side of a foreign key: without this index, every
score deleted (retention, a replayed day) scans the whole outbox to check nothing points at it.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outboxitem", schema=None) as batch_op:
        batch_op.create_index("ix_outboxitem_score_id", ["score_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("outboxitem", schema=None) as batch_op:
        batch_op.drop_index("ix_outboxitem_score_id")
