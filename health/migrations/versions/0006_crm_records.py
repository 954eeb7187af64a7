"""one customer, one account: CRM records linked to accounts

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 11:30:00

Every account so far was one CRM record: each becomes a `crmrecord` with the account's id (so
observations, outcomes and outbox rows point at it by the same number), and the natural keys
of observations and outcomes move from the account to the record they came in for, so that
linking and unlinking records moves their data without ever colliding.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import health.models

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = health.models.UTCDateTime(timezone=True)
COPIED = "source, external_id, name, domain, owner, segment, arr, customer_since, renewal_date"


def text(length: int | None = None):
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def upgrade() -> None:
    op.create_table(
        "crmrecord",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("source", text(32), nullable=False),
        sa.Column("external_id", text(64), nullable=False),
        sa.Column("name", text(255), nullable=False),
        sa.Column("domain", text(255), nullable=True),
        sa.Column("owner", text(255), nullable=True),
        sa.Column("segment", text(16), nullable=True),
        sa.Column("arr", sa.Float(), nullable=True),
        sa.Column("customer_since", sa.Date(), nullable=True),
        sa.Column("renewal_date", sa.Date(), nullable=True),
        sa.Column("cross_ref", text(64), nullable=True),
        sa.Column("linked_by", text(16), nullable=False),
        sa.Column("pinned", sa.Boolean(), nullable=False),
        sa.Column("home_account_id", sa.Integer(), nullable=True),
        sa.Column("review", text(), nullable=True),
        sa.Column("deleted_at", UTC_DATETIME, nullable=True),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["account.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("source", "external_id", name="uq_crmrecord_source_ext"),
    )
    for column in ("account_id", "external_id", "domain"):
        op.create_index(f"ix_crmrecord_{column}", "crmrecord", [column], unique=False)
    op.execute(
        f"INSERT INTO crmrecord (id, account_id, {COPIED}, linked_by, pinned, deleted_at, "
        f"updated_at) SELECT id, id, {COPIED}, 'new', false, deleted_at, updated_at FROM account"
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "SELECT setval(pg_get_serial_sequence('crmrecord', 'id'), "
            "GREATEST(COALESCE(MAX(id), 0), 1), COALESCE(MAX(id), 0) > 0) FROM crmrecord"
        )
    with op.batch_alter_table("account", schema=None) as batch_op:
        batch_op.add_column(sa.Column("merged_into", sa.Integer(), nullable=True))
        batch_op.create_foreign_key("fk_account_merged_into", "account", ["merged_into"], ["id"])
        # (source, external_id) now names an account's leading record: unique per record only
        batch_op.drop_constraint("uq_account_source_ext", type_="unique")
    keyed = {
        "observation": ("uq_observation_natural", ["signal", "observed_at", "source"]),
        "outcome": ("uq_outcome_natural", ["kind", "occurred_on"]),
    }
    for table, (name, rest) in keyed.items():
        _add_record_id(table)
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(name, type_="unique")
            batch_op.create_unique_constraint(name, ["record_id", *rest])
    for table, old, new in (
        ("outboxitem", "uq_outbox_account_target", "uq_outbox_record"),
        ("crmwrite", "uq_crmwrite_account_target", "uq_crmwrite_record"),
    ):
        _add_record_id(table)
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(old, type_="unique")
            batch_op.create_unique_constraint(new, ["record_id"])


def _add_record_id(table: str) -> None:
    """record_id = account_id: every account so far is its own one record."""
    with op.batch_alter_table(table, schema=None) as batch_op:
        batch_op.add_column(sa.Column("record_id", sa.Integer(), nullable=True))
    op.execute(f"UPDATE {table} SET record_id = account_id")
    with op.batch_alter_table(table, schema=None) as batch_op:
        batch_op.alter_column("record_id", existing_type=sa.Integer(), nullable=False)
        batch_op.create_foreign_key(f"fk_{table}_record_id", "crmrecord", ["record_id"], ["id"])


def downgrade() -> None:
    for table, old, new, cols in (
        ("outboxitem", "uq_outbox_account_target", "uq_outbox_record", ["account_id", "target"]),
        ("crmwrite", "uq_crmwrite_account_target", "uq_crmwrite_record", ["account_id", "target"]),
        ("observation", "uq_observation_natural", "uq_observation_natural",
         ["account_id", "signal", "observed_at", "source"]),
        ("outcome", "uq_outcome_natural", "uq_outcome_natural",
         ["account_id", "kind", "occurred_on"]),
    ):  # fmt: skip
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(new, type_="unique")
            batch_op.drop_constraint(f"fk_{table}_record_id", type_="foreignkey")
            batch_op.drop_column("record_id")
            batch_op.create_unique_constraint(old, cols)
    with op.batch_alter_table("account", schema=None) as batch_op:
        batch_op.drop_constraint("fk_account_merged_into", type_="foreignkey")
        batch_op.drop_column("merged_into")
        batch_op.create_unique_constraint("uq_account_source_ext", ["source", "external_id"])
    op.drop_table("crmrecord")
