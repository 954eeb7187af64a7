"""account name lookup in any case: `/health acme corp` finds the account named "Acme Corp"
through an equality index on lower(name) instead of a trigram scan (whose common trigrams,
such as those of "corp" or ".com", read a posting list per account)

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-29 17:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # both PostgreSQL and SQLite index expressions
    op.execute("CREATE INDEX IF NOT EXISTS ix_account_name_lower ON account (lower(name))")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_account_name_lower")
