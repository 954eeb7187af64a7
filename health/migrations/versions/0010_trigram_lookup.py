"""trigram lookup: `/health acme` and `healthbot brief acme` find accounts by part of a name
or domain through GIN trigram indexes instead of scanning every account (PostgreSQL)

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29 12:50:00

pg_trgm is a trusted extension (PostgreSQL 13+): the database owner may create it. Where it
cannot be created, the indexes are left out and lookups scan as before (slower, same answers).
"""

from collections.abc import Sequence

from alembic import op
from sqlalchemy.exc import DBAPIError

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = {  # name -> (table, column)
    "ix_account_name_trgm": ("account", "name"),
    "ix_account_domain_trgm": ("account", "domain"),
    "ix_crmrecord_name_trgm": ("crmrecord", "name"),
    "ix_crmrecord_domain_trgm": ("crmrecord", "domain"),
}


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    try:
        with bind.begin_nested():
            op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except DBAPIError:  # not allowed here: lookups keep scanning
        return
    for name, (table, column) in INDEXES.items():
        op.execute(
            f"CREATE INDEX IF NOT EXISTS {name} ON {table} USING gin (lower({column}) gin_trgm_ops)"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name in INDEXES:
        op.execute(f"DROP INDEX IF EXISTS {name}")
