"""suggestions: the strategy engine's scored view per pattern signal, with each input's share

Revision ID: 0011
Revises: 0010
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import models.base

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "suggestions",
        sa.Column("symbol", sa.String(length=32), nullable=False),
        sa.Column("ts", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("signal_kind", sa.String(length=32), nullable=False),
        sa.Column("signal_ts", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("horizon", sa.Integer(), nullable=True),
        sa.Column("contributions", JSON_DOC, nullable=False),
        sa.Column("inputs", JSON_DOC, nullable=False),
        sa.Column("degraded", sa.Text(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("created_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_suggestions")),
        sa.UniqueConstraint(
            "symbol",
            "signal_kind",
            "signal_ts",
            name=op.f("uq_suggestions_symbol_signal_kind_signal_ts"),
        ),
    )
    op.create_index("ix_suggestions_symbol_ts", "suggestions", ["symbol", "ts"])
    op.create_index("ix_suggestions_ts", "suggestions", ["ts"])


def downgrade() -> None:
    op.drop_index("ix_suggestions_ts", table_name="suggestions")
    op.drop_index("ix_suggestions_symbol_ts", table_name="suggestions")
    op.drop_table("suggestions")
