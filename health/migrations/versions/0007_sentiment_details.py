"""sentiment details: direction and flags of a CSM's sentiment entry

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 12:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sentimententry", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("direction", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True)
        )
        batch_op.add_column(sa.Column("flags", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sentimententry", schema=None) as batch_op:
        batch_op.drop_column("flags")
        batch_op.drop_column("direction")
