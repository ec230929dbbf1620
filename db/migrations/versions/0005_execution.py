"""execution: an order's rejection reason; the trading kill switch log

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("reject_reason", sa.Text(), nullable=True))
    op.create_table(
        "trading_halts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True),
        sa.Column("account", sa.String(length=100), nullable=True),
        sa.Column("halted", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("ts", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trading_halts")),
    )
    op.create_index("ix_trading_halts_account_ts", "trading_halts", ["account", "ts"])


def downgrade() -> None:
    op.drop_index("ix_trading_halts_account_ts", table_name="trading_halts")
    op.drop_table("trading_halts")
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("reject_reason")
