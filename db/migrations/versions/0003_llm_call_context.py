"""llm calls: member, provider, schema, cache key and hit, attempts, parameters

The gateway's response cache looks calls up by `cache_key`; the audit chain
needs to know which council member asked and whether an answer was replayed.

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("llm_calls") as batch:
        batch.add_column(
            sa.Column("member", sa.String(length=100), server_default="", nullable=False)
        )
        batch.add_column(
            sa.Column("provider", sa.String(length=32), server_default="", nullable=False)
        )
        batch.add_column(
            sa.Column("schema_name", sa.String(length=100), server_default="", nullable=False)
        )
        batch.add_column(sa.Column("cache_key", sa.String(length=64), nullable=True))
        batch.add_column(
            sa.Column("cache_hit", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch.add_column(sa.Column("attempts", sa.Integer(), server_default="1", nullable=False))
        batch.add_column(
            sa.Column(
                "params",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=True,
            )
        )
        batch.create_index("ix_llm_calls_cache_key", ["cache_key"])


def downgrade() -> None:
    with op.batch_alter_table("llm_calls") as batch:
        batch.drop_index("ix_llm_calls_cache_key")
        for column in (
            "params",
            "attempts",
            "cache_hit",
            "cache_key",
            "schema_name",
            "provider",
            "member",
        ):
            batch.drop_column(column)
